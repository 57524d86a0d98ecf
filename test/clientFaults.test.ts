// Hostile or broken clients at the server level, over raw sockets: what Node's HTTP parser and the
// server's limits (server.ts) must refuse before any route runs.
import { expect } from 'chai';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { exchange, statusLines } from './helpers/rawSocket.js';

describe('client faults at the server (raw sockets, real gateway)', () => {
  let gw: TestGateway;
  before(async () => { gw = await startTestGateway({ HEADERS_TIMEOUT_MS: '300', MAX_HEADER_BYTES: '8192' }); });
  after(() => gw.close());

  it('a well-behaved raw request still gets its answer (the baseline)', async () => {
    const { response } = await exchange(gw.url, 'GET /api/ping HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n');
    expect(response).to.match(/^HTTP\/1\.1 200 OK\r\n/);
    expect(response.endsWith('\r\n\r\npong')).to.equal(true);
  });

  it('request headers larger than MAX_HEADER_BYTES get 431 and the connection closed', async () => {
    const big = `GET /api/ping HTTP/1.1\r\nHost: gateway\r\nX-Filler: ${'a'.repeat(10_000)}\r\n\r\n`;
    const { response, closedByServer } = await exchange(gw.url, big);
    expect(response).to.match(/^HTTP\/1\.1 431 /);
    expect(closedByServer).to.equal(true);
  });

  it('a client trickling its headers (slowloris) is cut off after HEADERS_TIMEOUT_MS', async () => {
    const { response, closedByServer, ms } = await exchange(gw.url, 'GET /api/ping HTTP/1.1\r\nHost: gateway\r\n', {
      trickle: 'X-Slow: 1\r\n',
      waitMs: 5000,
    });
    expect(closedByServer).to.equal(true);
    // 300 ms, checked every 300 ms: well before the 5 s the test would wait (Node's default check is every 30 s).
    expect(ms).to.be.below(2500);
    expect(statusLines(response)).to.deep.equal(response ? ['HTTP/1.1 408'] : []);
  });

  it('a client that connects and sends nothing is cut off too', async () => {
    const { closedByServer, ms } = await exchange(gw.url, '', { waitMs: 5000 });
    expect(closedByServer).to.equal(true);
    expect(ms).to.be.below(2500);
  });

  describe('request smuggling shapes are refused with 400 and the connection closed', () => {
    const smuggled = 'GET /api/health HTTP/1.1\r\nHost: gateway\r\n\r\n';
    const shapes: Record<string, string> = {
      'Content-Length then Transfer-Encoding': `POST /api/ping HTTP/1.1\r\nHost: gateway\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      'Transfer-Encoding then Content-Length': `POST /api/ping HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\nContent-Length: 48\r\n\r\n0\r\n\r\n${smuggled}`,
      'two different Content-Length': `POST /api/ping HTTP/1.1\r\nHost: gateway\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello${smuggled}`,
      'two equal Content-Length': `POST /api/ping HTTP/1.1\r\nHost: gateway\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello${smuggled}`,
      'a Content-Length list': `POST /api/ping HTTP/1.1\r\nHost: gateway\r\nContent-Length: 5, 5\r\n\r\nhello${smuggled}`,
      'an obfuscated Transfer-Encoding with Content-Length': `POST /api/ping HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello${smuggled}`,
      'a space before the colon': `POST /api/ping HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      'chunked not the last encoding': `POST /api/ping HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`,
      'a bare CR inside a header value': `GET /api/ping HTTP/1.1\r\nHost: gateway\r\nX-Injected: a\rSet-Cookie: b\r\n\r\n`,
      'bare LF line endings': 'GET /api/ping HTTP/1.1\nHost: gateway\n\n',
    };
    for (const [name, request] of Object.entries(shapes)) {
      it(name, async () => {
        const { response, closedByServer } = await exchange(gw.url, request);
        // One answer only: nothing smuggled behind the first request is ever served.
        expect(statusLines(response)).to.deep.equal(['HTTP/1.1 400']);
        expect(closedByServer).to.equal(true);
      });
    }
  });

  it('no answer to a hostile request reveals a stack trace or an internal address', async () => {
    const upstream = new URL(gw.config.upstreams.avatar).host;
    const requests = [
      'GET /api/%E0%A4%A HTTP/1.1\r\nHost: gateway\r\n\r\n',
      'GET /api/avatar/%00%2e%2e%2f HTTP/1.1\r\nHost: gateway\r\n\r\n',
      `GET /api/${'x'.repeat(6000)} HTTP/1.1\r\nHost: gateway\r\n\r\n`,
      'GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\nHost: gateway\r\n\r\n',
      'GET /api/health/detailed HTTP/1.1\r\nHost: gateway\r\n\r\n',
      'PATCH /api/health HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"a":tru',
      'GET /api/ping HTTP/1.1\r\nHost: gateway\r\nContent-Length: -1\r\n\r\n',
      'GET /api/ping HTTP/9.9\r\nHost: gateway\r\n\r\n',
      'BREW /api/ping HTTP/1.1\r\nHost: gateway\r\n\r\n',
      '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n',
    ];
    for (const request of requests) {
      const { response } = await exchange(gw.url, request.replace(/\r\n\r\n/, '\r\nConnection: close\r\n\r\n'));
      expect(response, request.slice(0, 40)).to.match(/^HTTP\/1\.1 \d{3} /);
      expect(response, request.slice(0, 40)).not.to.match(/\n\s+at |node_modules|\.ts:\d+|Error: /);
      expect(response, request.slice(0, 40)).not.to.contain(upstream);
    }
    // Still alive and well afterwards.
    expect((await exchange(gw.url, 'GET /api/ping HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n')).response).to.match(/ 200 OK/);
  });
});
