// Child process: the "bare Node http proxy" peer of performance.md, measured in the same run as
// the gateway. It does the gateway's work for GET /api/avatar/list (HS256 token check, upstream
// call on a keep-alive pool, list transform) with nothing else: no framework, no logging.
// argv: <upstream origin> <jwt secret> <max sockets>
import { createSecretKey } from 'node:crypto';
import http from 'node:http';
import jwt from 'jsonwebtoken';

const [upstream, secret, maxSockets] = process.argv.slice(2);
// A KeyObject: given a string, jsonwebtoken first tries to parse it as a PEM public key, every call.
const key = createSecretKey(Buffer.from(secret, 'utf8'));
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(maxSockets), timeout: 4000 });

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
}

function transform(avatars: unknown): unknown {
  if (!Array.isArray(avatars)) return avatars;
  return Object.fromEntries(avatars.map((name) => [name, {
    avatar_model: '', clone: false, description: `Avatar: ${name}`, status: 'active', timbre: '', tts_model: '',
  }]));
}

const server = http.createServer((req, res) => {
  try {
    jwt.verify(req.headers.authorization?.slice('Bearer '.length) ?? '', key, { algorithms: ['HS256'] });
  } catch (error) {
    reply(res, 422, { msg: (error as Error).message });
    return;
  }
  http.get(`${upstream}/avatar/get_avatars`, { agent }, (upstreamRes) => {
    let text = '';
    upstreamRes.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => {
      try {
        const body = JSON.parse(text) as { avatars?: unknown };
        reply(res, upstreamRes.statusCode ?? 500, transform(body.avatars));
      } catch (error) {
        reply(res, 500, { msg: (error as Error).message });
      }
    });
  }).on('error', (error) => reply(res, 500, { msg: error.message }));
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.send!({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}` });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
