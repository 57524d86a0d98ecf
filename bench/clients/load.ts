// Sustained load with autocannon. Latencies are taken from its per-response events, which carry
// fractional milliseconds; its own histogram rounds to whole ones, too coarse for the gateway's
// added latency.
import autocannon from 'autocannon';
import { summarize, type LatencySummary } from '../stats.js';

export interface LoadResult {
  requestsPerSecond: number;
  total: number;
  /** Non-2xx answers and socket errors (timeouts included). */
  errors: number;
  latency: LatencySummary;
}

export interface LoadOptions {
  url: string;
  headers?: Record<string, string>;
  connections: number;
  durationS: number;
  onSecond?(elapsedS: number): void;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const instance = autocannon({
    url: options.url,
    headers: options.headers,
    connections: options.connections,
    duration: options.durationS,
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status >= 200 && status < 300) latencies.push(ms);
  });
  let elapsed = 0;
  instance.on('tick', () => options.onSecond?.(++elapsed));
  const result = await instance;
  return {
    requestsPerSecond: result['2xx'] / result.duration,
    total: result['2xx'],
    errors: result.errors + result.non2xx,
    latency: summarize(latencies),
  };
}
