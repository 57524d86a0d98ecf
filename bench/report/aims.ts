// performance.md's aims, checked against one run's results. Each aim is judged only on figures
// measured in this run, except the Flask throughput, which is the peer table's (no Python here).
import type { BenchResults, BurstMode, BurstRow, LoadRow, Peer, UploadRow } from '../results.js';

/** The best Flask deployment's throughput in performance.md's peer table (gunicorn gevent, 2 workers). */
export const FLASK_BEST_REQ_PER_S = 970;
const MB = 1e6;
const KB = 1e3;

export type AimId = 'burst1000' | 'burst5000' | 'throughput' | 'addedLatency' | 'upload' | 'memoryPerWait';
export type Verdict = 'met' | 'not met' | 'not measured';

export interface AimCheck {
  id: AimId;
  verdict: Verdict;
  /** The figures behind the verdict, absent when not measured. */
  figures?: Record<string, number>;
}

function burstRow(results: BenchResults, mode: BurstMode, users: number): BurstRow | undefined {
  return results.burst?.rows.find((row) => row.mode === mode && row.users === users && row.result);
}

function loadRow(results: BenchResults, peer: Peer): LoadRow | undefined {
  return results.throughput?.rows.find((row) => row.peer === peer);
}

function uploadRow(results: BenchResults, path: UploadRow['path']): UploadRow | undefined {
  return results.upload?.rows.find((row) => row.path === path);
}

const judged = (id: AimId, met: boolean, figures: Record<string, number>): AimCheck => ({ id, verdict: met ? 'met' : 'not met', figures });

function burstAim(results: BenchResults, id: AimId, users: number, maxRatio: number, maxRssBytes?: number): AimCheck {
  const after = burstRow(results, 'after', users);
  const direct = burstRow(results, 'direct', users);
  if (!after?.result || !direct?.result) return { id, verdict: 'not measured' };
  const wallRatio = after.result.wallMs / direct.result.wallMs;
  const rss = after.peakRssBytes ?? NaN;
  const allAnswered = after.result.successes === users;
  const met = allAnswered && wallRatio <= maxRatio && (maxRssBytes === undefined || rss < maxRssBytes);
  return judged(id, met, { users, answered: after.result.successes, wallMs: after.result.wallMs, directMs: direct.result.wallMs, wallRatio, rssBytes: rss });
}

export function checkAims(results: BenchResults): AimCheck[] {
  const checks: AimCheck[] = [burstAim(results, 'burst1000', 1000, 1.15), burstAim(results, 'burst5000', 5000, 1.3, 300 * MB)];

  const gateway = loadRow(results, 'gateway');
  const bare = loadRow(results, 'bare Node proxy');
  const direct = loadRow(results, 'direct');
  if (gateway && bare) {
    const vsBare = gateway.many.requestsPerSecond / bare.many.requestsPerSecond;
    const vsFlask = gateway.many.requestsPerSecond / FLASK_BEST_REQ_PER_S;
    checks.push(judged('throughput', vsBare >= 0.8 && vsFlask >= 5, { reqPerS: gateway.many.requestsPerSecond, bareReqPerS: bare.many.requestsPerSecond, vsBare, vsFlask }));
  } else checks.push({ id: 'throughput', verdict: 'not measured' });

  if (gateway && direct) {
    const addedP50 = gateway.one.latency.p50 - direct.one.latency.p50;
    const addedP99 = gateway.one.latency.p99 - direct.one.latency.p99;
    checks.push(judged('addedLatency', addedP50 < 0.5 && addedP99 < 2, { addedP50, addedP99 }));
  } else checks.push({ id: 'addedLatency', verdict: 'not measured' });

  const upGateway = uploadRow(results, 'gateway');
  const upDirect = uploadRow(results, 'direct');
  if (upGateway?.rssGrowthBytes !== undefined && upDirect) {
    const timeRatio = upGateway.result.ms / upDirect.result.ms;
    const met = upGateway.sha256Ok && upDirect.sha256Ok && upGateway.rssGrowthBytes < 64 * MB && timeRatio <= 1.2;
    checks.push(judged('upload', met, { sizeBytes: results.upload!.sizeBytes, rssGrowthBytes: upGateway.rssGrowthBytes, timeRatio, sha256Ok: Number(upGateway.sha256Ok) }));
  } else checks.push({ id: 'upload', verdict: 'not measured' });

  const waiting = burstRow(results, 'after', 1000);
  if (waiting?.peakRssBytes !== undefined && waiting.baselineRssBytes !== undefined) {
    const perRequest = (waiting.peakRssBytes - waiting.baselineRssBytes) / 1000;
    checks.push(judged('memoryPerWait', perRequest < 50 * KB, { bytesPerRequest: perRequest }));
  } else checks.push({ id: 'memoryPerWait', verdict: 'not measured' });

  return checks;
}
