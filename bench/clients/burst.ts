// The burst client: N users, each one request, all sent in the same tick on N fresh
// connections (as N browsers would), and the time until the last answer.
import http from 'node:http';
import { countFailure, getOnce } from './request.js';
import { summarize, type LatencySummary } from '../stats.js';

export interface BurstResult {
  users: number;
  wallMs: number;
  successes: number;
  /** Failures by kind: an HTTP status other than 200, or a socket error code. */
  failures: Record<string, number>;
  latency: LatencySummary;
}

export interface BurstRequest {
  url: string;
  headers?: Record<string, string>;
  /** A request still unanswered after this long is abandoned and counted as 'timeout'. */
  timeoutMs: number;
  onAnswer?(answered: number): void;
}

export async function fireBurst(users: number, request: BurstRequest): Promise<BurstResult> {
  // One socket per user, none reused: the users are separate clients.
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let answered = 0;
  let lastAnswer = 0;
  const started = performance.now();

  const one = async () => {
    const failure = await getOnce(request.url, agent, request.headers, request.timeoutMs);
    lastAnswer = performance.now();
    if (failure) countFailure(failures, failure);
    else latencies.push(lastAnswer - started);
    request.onAnswer?.(++answered);
  };

  const all: Promise<void>[] = [];
  for (let i = 0; i < users; i++) all.push(one());
  await Promise.all(all);
  agent.destroy();
  return { users, wallMs: lastAnswer - started, successes: latencies.length, failures, latency: summarize(latencies) };
}
