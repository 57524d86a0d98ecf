// A tiny HTTP server on 127.0.0.1:ephemeral standing in for an upstream: it counts connections
// and requests, so tests can see what the gateway's client really did on the wire.
import http from 'node:http';
import type { Socket } from 'node:net';

export interface TestUpstream {
  url: string;
  port: number;
  server: http.Server;
  /** Connections accepted so far (one per socket the client opened). */
  connections(): number;
  /** Every request received so far, in arrival order. */
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders }>;
  close(): Promise<void>;
}

export async function startUpstream(handler: http.RequestListener, options: http.ServerOptions = {}): Promise<TestUpstream> {
  const server = http.createServer(options, handler);
  const sockets = new Set<Socket>();
  let connections = 0;
  const requests: TestUpstream['requests'] = [];
  server.on('connection', (socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // Prepended, so a request is on record before the handler answers (or destroys) it.
  server.prependListener('request', (req) => {
    requests.push({ method: req.method!, url: req.url!, headers: req.headers });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    connections: () => connections,
    requests,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** Answers every request with this JSON (200 unless told). */
export function json(body: unknown, status = 200): http.RequestListener {
  const text = JSON.stringify(body);
  return (_req, res) => {
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };
}
