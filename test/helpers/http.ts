// One raw HTTP exchange with node:http (no pooling, no header normalisation beyond Node's), so
// tests can assert exact status lines, repeated headers, empty bodies and exact body bytes.
import http from 'node:http';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Name/value pairs as received, duplicates kept. */
  rawHeaders: string[];
  body: string;
  /** The body as received, byte for byte. */
  bytes: Buffer;
  /** False when the connection ended before the response did. */
  complete: boolean;
}

export interface RawRequest {
  method?: string;
  headers?: Record<string, string>;
  /** Sent with its Content-Length. */
  body?: string | Buffer;
}

export function send(url: string, options: RawRequest = {}): Promise<RawResponse> {
  const headers = { ...options.headers };
  if (options.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(options.body));
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      const done = () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: bytes.toString('utf8'), bytes, complete: res.complete });
      };
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', done);
      // A connection cut mid-body: what arrived, marked incomplete.
      res.on('error', done);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** How many times a header appears in a response (case-insensitive name). */
export function headerCount(res: RawResponse, name: string): number {
  return res.rawHeaders.filter((value, i) => i % 2 === 0 && value.toLowerCase() === name.toLowerCase()).length;
}
