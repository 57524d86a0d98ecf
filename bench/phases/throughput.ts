// Sustained load with a 0 ms upstream: what the gateway itself costs. The simulated service called
// directly and the bare Node proxy peer are measured in the same run, then the gateway; each at
// --connections and at one connection (the latency the gateway adds to a single user).
import { runLoad, type LoadResult } from '../clients/load.js';
import type { BenchContext } from '../context.js';
import { forkHelper } from '../procs/processes.js';
import type { LoadRow, Peer } from '../results.js';

// The seed's pool: httpx.AsyncClient(limits=Limits(max_connections=100)).
const BARE_PROXY_POOL = 100;
const WARM_UP_S = 1;

interface Endpoint {
  url: string;
  headers?: Record<string, string>;
  stop?(): Promise<void>;
}

async function measure(ctx: BenchContext, peer: Peer, endpoint: Endpoint): Promise<LoadRow> {
  const { options, progress } = ctx;
  const run = async (connections: number, durationS: number, label: string): Promise<LoadResult> => {
    const result = await runLoad({
      ...endpoint,
      connections,
      durationS,
      onSecond: (s) => progress.update(`throughput ${peer}: ${label}, ${s}/${durationS} s`),
    });
    progress.done();
    return result;
  };
  try {
    await run(options.connections, Math.min(WARM_UP_S, options.durationS), 'warm-up');
    return {
      peer,
      many: await run(options.connections, options.durationS, `${options.connections} connections`),
      one: await run(1, options.durationS, 'one connection'),
    };
  } finally {
    await endpoint.stop?.();
  }
}

export async function throughputPhase(ctx: BenchContext): Promise<void> {
  const { options, tokens, sim } = ctx;
  const rows: LoadRow[] = [];
  ctx.results.throughput = { connections: options.connections, durationS: options.durationS, rows };
  const auth = { authorization: `Bearer ${tokens.student}` };
  if (!sim) {
    rows.push(await measure(ctx, 'target', { url: `${options.target!.url}/api/avatar/list`, headers: auth }));
    return;
  }
  await sim.setLatency(0);
  rows.push(await measure(ctx, 'direct', { url: `${sim.url}/avatar/get_avatars` }));
  const bare = await forkHelper('./bareProxy.ts', [sim.url, tokens.secret, String(BARE_PROXY_POOL)]);
  rows.push(await measure(ctx, 'bare Node proxy', { url: `${bare.url}/api/avatar/list`, headers: auth, stop: bare.stop }));
  const gateway = await ctx.startGateway();
  rows.push(await measure(ctx, 'gateway', { url: `${gateway.url}/api/avatar/list`, headers: auth, stop: gateway.stop }));
}
