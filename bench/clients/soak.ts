// A steady request rate for a long time, through one keep-alive client like a busy frontend.
// Every so often the traffic pauses for 3.9 to 5.4 s, so the gateway's pooled connections sit
// idle right across the avatar service's 5 s keep-alive limit: the moment a reset can happen.
import http from 'node:http';
import { countFailure, getOnce } from './request.js';

export interface SoakResult {
  seconds: number;
  sent: number;
  ok: number;
  failures: Record<string, number>;
}

export interface SoakOptions {
  url: string;
  headers: Record<string, string>;
  seconds: number;
  ratePerSecond: number;
  timeoutMs: number;
  onSecond?(elapsedS: number, result: SoakResult): void;
}

const TRAFFIC_BETWEEN_PAUSES_S = 10;
const PAUSES_S = [3.9, 4.4, 4.9, 5.4];

/** Whether requests are sent at second t: traffic blocks with pauses cycling through PAUSES_S. */
export function sendingAt(t: number): boolean {
  for (let i = 0; ; i++) {
    if (t < TRAFFIC_BETWEEN_PAUSES_S) return true;
    t -= TRAFFIC_BETWEEN_PAUSES_S;
    const pause = PAUSES_S[i % PAUSES_S.length];
    if (t < pause) return false;
    t -= pause;
  }
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const result: SoakResult = { seconds: options.seconds, sent: 0, ok: 0, failures: {} };
  const inFlight = new Set<Promise<void>>();
  const send = () => {
    result.sent++;
    const done = getOnce(options.url, agent, options.headers, options.timeoutMs).then((failure) => {
      if (failure) countFailure(result.failures, failure);
      else result.ok++;
      inFlight.delete(done);
    });
    inFlight.add(done);
  };

  const started = performance.now();
  let due = 0;
  let reported = 0;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = (performance.now() - started) / 1000;
      if (elapsed >= options.seconds) {
        clearInterval(tick);
        resolve();
        return;
      }
      if (sendingAt(elapsed)) {
        const target = Math.floor(elapsed * options.ratePerSecond);
        for (; due < target; due++) send();
      } else {
        due = Math.floor(elapsed * options.ratePerSecond);
      }
      if (Math.floor(elapsed) > reported) options.onSecond?.((reported = Math.floor(elapsed)), result);
    }, 10);
  });
  await Promise.all(inFlight);
  agent.destroy();
  return result;
}
