// A circuit breaker per upstream (api.md, "Limits, load and shutdown"). After failureThreshold
// consecutive connection failures (refused, reset, closed early, not HTTP: the "failure" row of
// api.md's common mapping) the circuit opens: for cooldownMs every call is refused at once as
// 'circuit_open' without touching the upstream. Then it is half-open: one call goes through as a
// probe while the others are still refused; its success closes the circuit, its failure opens it
// for another cool-down. Timeouts and HTTP statuses are answers, not connection failures: a GPU
// box that is slow is not down, and its 504s keep their own mapping.
import type { Config } from '../config.js';
import { UpstreamError, type UpstreamName } from './errors.js';

export type BreakerLimits = Config['breaker'];

/** success: the upstream answered (any status); failure: a connection failure; ignored: neither (timeout, client gone). */
export type CallOutcome = 'success' | 'failure' | 'ignored';

/** Reports how an admitted call ended; calling it again does nothing. */
export type SettleCall = (outcome: CallOutcome) => void;

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface BreakerState {
  state: CircuitState;
  consecutive_failures: number;
}

export class CircuitBreaker {
  private consecutiveFailures = 0;
  private openedAt: number | undefined;
  private probing = false;

  constructor(
    private readonly upstream: UpstreamName,
    private readonly limits: BreakerLimits,
    // Injectable so that tests move time instead of waiting for it.
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Lets a call through (returning how to settle it) or throws UpstreamError 'circuit_open'. */
  admit(): SettleCall {
    const state = this.currentState();
    if (state === 'open') throw this.refusal(this.limits.cooldownMs - (this.now() - this.openedAt!));
    if (state === 'half_open') {
      if (this.probing) throw this.refusal(0);
      this.probing = true;
      return this.settler(true);
    }
    return this.settler(false);
  }

  state(): BreakerState {
    return { state: this.currentState(), consecutive_failures: this.consecutiveFailures };
  }

  private currentState(): CircuitState {
    if (this.openedAt === undefined) return 'closed';
    return this.now() - this.openedAt < this.limits.cooldownMs ? 'open' : 'half_open';
  }

  private settler(isProbe: boolean): SettleCall {
    let settled = false;
    return (outcome) => {
      if (settled) return;
      settled = true;
      if (isProbe) this.probing = false;
      if (outcome === 'success') {
        this.consecutiveFailures = 0;
        this.openedAt = undefined;
      } else if (outcome === 'failure') {
        this.consecutiveFailures++;
        // A failed probe reopens at once; a call admitted before the circuit opened changes nothing.
        if (isProbe || (this.openedAt === undefined && this.consecutiveFailures >= this.limits.failureThreshold)) {
          this.openedAt = this.now();
        }
      }
      // 'ignored' leaves everything as it was; a probe that ends so lets the next call probe.
    };
  }

  private refusal(remainingMs: number): UpstreamError {
    const retryAfter = String(Math.max(1, Math.ceil(remainingMs / 1000)));
    return new UpstreamError('circuit_open', this.upstream, `${this.upstream} service unavailable: circuit open after repeated connection failures`, retryAfter);
  }
}
