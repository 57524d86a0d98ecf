import { expect } from 'chai';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

describe('health routes (real gateway on 127.0.0.1)', () => {
  let gw: TestGateway;
  before(async () => { gw = await startTestGateway(); });
  after(() => gw.close());

  it('GET /api/ping answers pong', async () => {
    const res = await fetch(`${gw.url}/api/ping`);
    expect(res.status).to.equal(200);
    expect(await res.text()).to.equal('pong');
  });

  it('GET /api/health/detailed reports an unreachable avatar service as degraded (503)', async () => {
    const res = await fetch(`${gw.url}/api/health/detailed`);
    expect(res.status).to.equal(503);
    const body = await res.json();
    expect(body.status).to.equal('degraded');
  });
});
