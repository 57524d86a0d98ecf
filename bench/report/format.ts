// Number formats shared by the terminal tables, the report and the chart.
export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
export const millis = (ms: number) => (ms < 10 ? `${ms.toFixed(2)} ms` : ms < 100 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`);
export const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
export const kilobytes = (bytes: number) => `${(bytes / 1e3).toFixed(1)} KB`;
export const count = (n: number) => Math.round(n).toLocaleString('en-US');
export const ratio = (x: number) => `${x.toFixed(2)}x`;
export const signedMillis = (ms: number) => `${ms >= 0 ? '+' : '-'}${millis(Math.abs(ms))}`;
export const DASH = '—';
