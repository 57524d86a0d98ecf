// One raw HTTP exchange with node:http (no pooling, no header normalisation beyond Node's), so
// tests can assert exact status lines, repeated headers and empty bodies.
import http from 'node:http';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Name/value pairs as received, duplicates kept. */
  rawHeaders: string[];
  body: string;
}

export function send(url: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({
        status: res.statusCode!,
        headers: res.headers,
        rawHeaders: res.rawHeaders,
        body: Buffer.concat(chunks).toString('utf8'),
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** How many times a header appears in a response (case-insensitive name). */
export function headerCount(res: RawResponse, name: string): number {
  return res.rawHeaders.filter((value, i) => i % 2 === 0 && value.toLowerCase() === name.toLowerCase()).length;
}
