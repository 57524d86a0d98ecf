import { fireBurst } from './clients/burst.js';
import { startSimulator } from './procs/simulator.js';
import { startGatewayProcess, killAll, forkHelper } from './procs/processes.js';
import { benchTokens } from './tokens.js';
import fs from 'node:fs';
function cpu(pid: number): number { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10; }
function overflows(): number { const [h, v] = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n'); const hs = h.split(' '); return Number(v.split(' ')[hs.indexOf('ListenOverflows')]); }
const users = Number(process.argv[2] ?? 1000);
const lat = Number(process.argv[3] ?? 0);
const env = Object.fromEntries((process.argv[4] ?? '').split(',').filter(Boolean).map((kv) => kv.split('=')));
const tokens = benchTokens();
const sim = await startSimulator(0);
const gw = await startGatewayProcess({ JWT_SECRET_KEY: tokens.secret, AVATAR_SERVICE_URL: sim.url, TTS_SERVICE_URL: sim.url, WEBRTC_SERVICE_URL: sim.url, ...env }, process.env.PROF);
const auth = { authorization: `Bearer ${tokens.student}` };
await fireBurst(50, { url: `${gw.url}/api/avatar/list`, headers: auth, timeoutMs: 60000 });
await sim.setLatency(lat);
const bare = await forkHelper('./bareProxy.ts', [sim.url, tokens.secret, '100000']);
await fireBurst(50, { url: `${bare.url}/api/avatar/list`, headers: auth, timeoutMs: 60000 });
for (const [name, url, headers] of [['gateway', `${gw.url}/api/avatar/list`, auth], ['bare', `${bare.url}/api/avatar/list`, auth], ['direct', `${sim.url}/avatar/get_avatars`, undefined]] as const) {
  for (let i = 0; i < 2; i++) {
    const o = overflows(); const c0 = cpu(gw.pid), s0 = cpu(sim.pid), b0 = cpu(bare.pid), m0 = process.cpuUsage();
    const r = await fireBurst(users, { url, headers, timeoutMs: 60000 });
    console.log(name, users, 'wall', r.wallMs.toFixed(0), 'p50', r.latency.p50.toFixed(0), 'p99', r.latency.p99.toFixed(0), 'ok', r.successes, JSON.stringify(r.failures), 'overflows', overflows() - o, 'cpu ms gw', cpu(gw.pid) - c0, 'sim', cpu(sim.pid) - s0, 'bare', cpu(bare.pid) - b0, 'client', Math.round((process.cpuUsage(m0).user + process.cpuUsage(m0).system) / 1000), 'min', r.latency.count && Math.round(Math.min(...[r.latency.p50])));
    await new Promise((res) => setTimeout(res, 1000));
  }
}
await gw.stop(); await bare.stop(); await sim.stop(); killAll();
