// Puts each upstream's circuit breaker in front of its bulkhead, for services/httpClient.ts: a call
// is first refused at once if the circuit is open, then waits for a slot. The state of both is what
// /api/health/detailed and the metrics show.
import type { Config } from '../config.js';
import { Bulkhead, type BulkheadState, type ReleaseSlot } from './bulkhead.js';
import { CircuitBreaker, type CallOutcome, type CircuitState, type SettleCall } from './circuitBreaker.js';
import { UpstreamError, type UpstreamName } from './errors.js';

export interface UpstreamLoad extends BulkheadState {
  breaker: CircuitState;
  consecutive_failures: number;
}

/** An admitted call: settle() tells the breaker how it ended, release() frees its bulkhead slot. */
export interface Admission {
  settle: SettleCall;
  release: ReleaseSlot;
}

export interface UpstreamGuards {
  /** Rejects with UpstreamError 'circuit_open' or 'busy' (or 'reset' if `signal` aborts while queued). */
  admit(upstream: UpstreamName, signal?: AbortSignal): Promise<Admission>;
  state(): Record<UpstreamName, UpstreamLoad>;
}

const UPSTREAMS: UpstreamName[] = ['avatar', 'tts', 'webrtc'];

/** What a failed call tells the breaker: only connection failures count, never a client that left. */
export function outcomeOf(error: unknown, signal?: AbortSignal): CallOutcome {
  if (signal?.aborted || !(error instanceof UpstreamError)) return 'ignored';
  if (error.kind === 'connect' || error.kind === 'reset') return 'failure';
  // A body too large or not JSON still came from an upstream that answers.
  return error.kind === 'too_large' || error.kind === 'invalid_json' ? 'success' : 'ignored';
}

export function createUpstreamGuards(config: Pick<Config, 'bulkhead' | 'breaker'>): UpstreamGuards {
  const guards = Object.fromEntries(UPSTREAMS.map((name) => [name, {
    breaker: new CircuitBreaker(name, config.breaker),
    bulkhead: new Bulkhead(name, config.bulkhead),
  }])) as Record<UpstreamName, { breaker: CircuitBreaker; bulkhead: Bulkhead }>;

  return {
    async admit(upstream, signal) {
      const { breaker, bulkhead } = guards[upstream];
      const settle = breaker.admit();
      try {
        return { settle, release: await bulkhead.acquire(signal) };
      } catch (error) {
        // Never ran: a half-open probe that could not get a slot lets the next call probe.
        settle('ignored');
        throw error;
      }
    },
    state() {
      return Object.fromEntries(UPSTREAMS.map((name) => {
        const { state, consecutive_failures } = guards[name].breaker.state();
        return [name, { ...guards[name].bulkhead.state(), breaker: state, consecutive_failures }];
      })) as Record<UpstreamName, UpstreamLoad>;
    },
  };
}
