// The seed's table, extended: N users at once, each one GET /api/avatar/list, against the gateway
// with a pool of one connection ("before", the blocking original), as shipped ("after"), and
// against the simulated service directly (the floor), at the same upstream latency.
import { fireBurst } from '../clients/burst.js';
import type { BenchContext } from '../context.js';
import { startSampler } from '../procs/sampler.js';
import type { BurstMode, BurstRow } from '../results.js';

const RSS_SAMPLE_MS = 50;
const WARM_UP_REQUESTS = 50;
const PAUSE_BETWEEN_ROWS_MS = 500;
const SLACK_MS = 60_000;
const DEFAULT_UPSTREAM_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Endpoint {
  url: string;
  headers?: Record<string, string>;
  pid?: number;
}

async function runRows(ctx: BenchContext, mode: BurstMode, endpoint: Endpoint, rows: BurstRow[]): Promise<void> {
  const { options, progress, sim } = ctx;
  // A few quick calls first, so the rows measure a warm process rather than its first JIT pass.
  await sim?.setLatency(0);
  await fireBurst(WARM_UP_REQUESTS, { ...endpoint, timeoutMs: SLACK_MS });
  await sim?.setLatency(options.latencyMs);

  for (const users of options.users) {
    const serialMs = users * options.latencyMs;
    if (mode === 'before' && users > options.beforeMaxUsers) {
      rows.push({ mode, users, skipped: `serial: ${users} x ${options.latencyMs / 1000} s = ${serialMs / 1000} s` });
      continue;
    }
    const sampler = startSampler(endpoint.pid, RSS_SAMPLE_MS);
    const started = Date.now();
    const result = await fireBurst(users, {
      ...endpoint,
      timeoutMs: (mode === 'before' ? serialMs : options.latencyMs) + SLACK_MS,
      onAnswer: (answered) => progress.update(`burst ${mode}: ${users} users, ${answered} answered, ${((Date.now() - started) / 1000).toFixed(1)} s`),
    });
    const samples = sampler.stop();
    progress.done();
    rows.push({ mode, users, result, baselineRssBytes: samples.first?.rssBytes, peakRssBytes: samples.first && samples.peakRssBytes });
    await sleep(PAUSE_BETWEEN_ROWS_MS);
  }
}

export async function burstPhase(ctx: BenchContext): Promise<void> {
  const { options, tokens, sim } = ctx;
  const rows: BurstRow[] = [];
  ctx.results.burst = { latencyMs: options.latencyMs, rows };
  const auth = { authorization: `Bearer ${tokens.student}` };

  if (!sim) {
    await runRows(ctx, 'target', { url: `${options.target!.url}/api/avatar/list`, headers: auth }, rows);
    return;
  }
  // A call may wait for the whole burst in "before"; the route's timeout must not end it first.
  const timeout: Record<string, string> = 2 * options.latencyMs > DEFAULT_UPSTREAM_TIMEOUT_MS ? { UPSTREAM_TIMEOUT_MS: String(2 * options.latencyMs) } : {};
  for (const mode of ['before', 'after'] as const) {
    // "before" is one call at a time, like the blocking original, which had no queue limit either.
    const serial = { UPSTREAM_MAX_SOCKETS: '1', UPSTREAM_QUEUE_TIMEOUT_MS: String(2 * options.beforeMaxUsers * options.latencyMs) };
    const gateway = await ctx.startGateway(mode === 'before' ? { ...timeout, ...serial } : timeout);
    try {
      await runRows(ctx, mode, { url: `${gateway.url}/api/avatar/list`, headers: auth, pid: gateway.pid }, rows);
    } finally {
      await gateway.stop();
    }
  }
  await runRows(ctx, 'direct', { url: `${sim.url}/avatar/get_avatars` }, rows);
}
