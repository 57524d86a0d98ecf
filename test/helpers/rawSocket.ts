// Raw HTTP/1.1 over a net socket: the request bytes exactly as written (odd methods, broken framing,
// control characters), the answer as received, and a small parser for it, for hostile-client tests.
import net from 'node:net';

export interface RawExchange {
  /** Everything the gateway sent back (latin1: one character per byte). */
  response: string;
  /** Whether the gateway closed the connection (rather than the test giving up). */
  closedByServer: boolean;
  ms: number;
}

/**
 * Sends `request` on a fresh connection (`trickle`: more bytes every 50 ms, like a slowloris
 * client) and collects the answer until the gateway closes the connection or `waitMs` passes.
 */
export function exchange(url: string, request: string | Buffer, options: { trickle?: string; waitMs?: number } = {}): Promise<RawExchange> {
  const { port, hostname } = new URL(url);
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let response = '';
    let trickler: NodeJS.Timeout | undefined;
    const finish = (closedByServer: boolean) => {
      clearInterval(trickler);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ response, closedByServer, ms: performance.now() - started });
    };
    const giveUp = setTimeout(() => finish(false), options.waitMs ?? 2000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => { response += chunk; });
    socket.on('close', () => finish(true));
    socket.on('error', () => { /* a reset is a close too */ });
    socket.write(typeof request === 'string' ? Buffer.from(request, 'latin1') : request);
    if (options.trickle) trickler = setInterval(() => socket.write(options.trickle!), 50);
  });
}

/** The status lines of every answer in `response` (interim 1xx included). */
export const statusLines = (response: string) => response.match(/^HTTP\/1\.1 \d{3}/gm) ?? [];

export interface ParsedResponse {
  status: number;
  /** Lower-case names, repeats kept in order. */
  headers: Record<string, string[]>;
  body: Buffer;
  /** False when the connection ended before the body did. */
  complete: boolean;
}

/**
 * The answers in a raw response, in order: interim 1xx answers skipped, bodies framed by
 * Content-Length or chunked encoding, or by the end of the connection. `head`: no bodies.
 */
export function parseResponses(response: string, options: { head?: boolean } = {}): ParsedResponse[] {
  const bytes = Buffer.from(response, 'latin1');
  const answers: ParsedResponse[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', at);
    if (end === -1) throw new Error(`incomplete response head: ${JSON.stringify(bytes.subarray(at, at + 200).toString('latin1'))}`);
    const [statusLine, ...lines] = bytes.subarray(at, end).toString('latin1').split('\r\n');
    const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
    if (!match) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`);
    const status = Number(match[1]);
    const headers: Record<string, string[]> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      (headers[name] ??= []).push(line.slice(colon + 1).trim());
    }
    at = end + 4;
    if (status < 200) continue;
    const framed = frameBody(bytes, at, headers, options.head || status === 204 || status === 304);
    answers.push({ status, headers, body: framed.body, complete: framed.complete });
    at = framed.next;
  }
  return answers;
}

function frameBody(bytes: Buffer, at: number, headers: Record<string, string[]>, none?: boolean): { body: Buffer; complete: boolean; next: number } {
  if (none) return { body: Buffer.alloc(0), complete: true, next: at };
  if (headers['transfer-encoding']?.join(',').toLowerCase().includes('chunked')) {
    const chunks: Buffer[] = [];
    for (;;) {
      const lineEnd = bytes.indexOf('\r\n', at);
      if (lineEnd === -1) return { body: Buffer.concat(chunks), complete: false, next: bytes.length };
      const size = parseInt(bytes.subarray(at, lineEnd).toString('latin1'), 16);
      at = lineEnd + 2;
      if (size === 0) return { body: Buffer.concat(chunks), complete: true, next: bytes.indexOf('\r\n', at) + 2 };
      chunks.push(bytes.subarray(at, at + size));
      at += size + 2;
    }
  }
  const length = headers['content-length'] ? Number(headers['content-length'][0]) : bytes.length - at;
  const body = bytes.subarray(at, at + length);
  return { body, complete: body.length === length, next: at + length };
}
