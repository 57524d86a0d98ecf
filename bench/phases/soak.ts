// A steady rate for --soak seconds against a simulated service that closes idle keep-alive
// connections after 5 s, like uvicorn: every error counts (there must be none), and the gateway's
// RSS and open file descriptors are sampled every second to show nothing grows.
import { runSoak } from '../clients/soak.js';
import type { BenchContext } from '../context.js';
import { startSampler } from '../procs/sampler.js';

const UPSTREAM_LATENCY_MS = 20;
const SAMPLE_MS = 1000;
const TIMEOUT_MS = 30_000;

export async function soakPhase(ctx: BenchContext): Promise<void> {
  const { options, tokens, sim, progress } = ctx;
  const gateway = sim ? await ctx.startGateway() : undefined;
  await sim?.setLatency(UPSTREAM_LATENCY_MS);
  const url = gateway ? gateway.url : options.target!.url;
  try {
    const sampler = startSampler(gateway?.pid, SAMPLE_MS);
    const result = await runSoak({
      url: `${url}/api/avatar/list`,
      headers: { authorization: `Bearer ${tokens.student}` },
      seconds: options.soakSeconds,
      ratePerSecond: options.soakRate,
      timeoutMs: TIMEOUT_MS,
      onSecond: (s, sofar) => {
        const rss = sampler.series.last ? `, gateway RSS ${(sampler.series.last.rssBytes / 2 ** 20).toFixed(0)} MB` : '';
        const errors = Object.values(sofar.failures).reduce((sum, n) => sum + n, 0);
        progress.update(`soak: ${s}/${options.soakSeconds} s, ${sofar.ok} ok, ${errors} errors${rss}`);
      },
    });
    const samples = sampler.stop();
    progress.done();
    ctx.results.soak = {
      ratePerSecond: options.soakRate,
      upstreamLatencyMs: sim ? UPSTREAM_LATENCY_MS : NaN,
      result,
      samples: gateway && samples,
    };
  } finally {
    await gateway?.stop();
  }
}
