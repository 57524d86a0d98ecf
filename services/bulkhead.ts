// A bulkhead per upstream (api.md, "Limits, load and shutdown"): at most maxInFlight calls run at
// once, up to queueSize more wait (first come, first served) for at most queueTimeoutMs, and any
// call beyond that is refused at once as 'busy'. A stalled GPU box then costs a bounded number of
// sockets and waiting requests instead of growing without limit until the process falls over.
import type { Config } from '../config.js';
import { UpstreamError, type UpstreamName } from './errors.js';

export type BulkheadLimits = Config['bulkhead'];

export interface BulkheadState {
  in_flight: number;
  queued: number;
}

/** Gives the slot back; calling it again does nothing. */
export type ReleaseSlot = () => void;

interface Waiter {
  grant(): void;
}

// What a client that is told "busy" should wait before trying again, in seconds.
const BUSY_RETRY_AFTER_SECONDS = '1';

export class Bulkhead {
  private inFlight = 0;
  // A Set keeps insertion order (the queue's order) and removes a waiter that gives up in O(1).
  private readonly waiting = new Set<Waiter>();

  constructor(
    private readonly upstream: UpstreamName,
    private readonly limits: BulkheadLimits,
  ) {}

  /**
   * Resolves with a release function once the call may run; rejects with UpstreamError 'busy' when
   * the queue is full or the wait times out, or 'reset' when `signal` aborts while waiting.
   */
  acquire(signal?: AbortSignal): Promise<ReleaseSlot> {
    if (signal?.aborted) return Promise.reject(this.cancelled());
    if (this.inFlight < this.limits.maxInFlight) {
      this.inFlight++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.size >= this.limits.queueSize) return Promise.reject(this.busy('queue full'));

    return new Promise<ReleaseSlot>((resolve, reject) => {
      const giveUp = (error: UpstreamError) => {
        this.waiting.delete(waiter);
        cleanup();
        reject(error);
      };
      const onTimeout = () => giveUp(this.busy(`waited ${this.limits.queueTimeoutMs} ms`));
      const onAbort = () => giveUp(this.cancelled());
      const timer = setTimeout(onTimeout, this.limits.queueTimeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        grant: () => {
          cleanup();
          resolve(this.releaser());
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.add(waiter);
    });
  }

  state(): BulkheadState {
    return { in_flight: this.inFlight, queued: this.waiting.size };
  }

  private releaser(): ReleaseSlot {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // The slot passes straight to the longest waiter, so in_flight never exceeds the limit.
      const next = this.waiting.values().next();
      if (next.done) {
        this.inFlight--;
      } else {
        this.waiting.delete(next.value);
        next.value.grant();
      }
    };
  }

  private busy(why: string): UpstreamError {
    return new UpstreamError('busy', this.upstream, `${this.upstream} service busy: ${why}`, BUSY_RETRY_AFTER_SECONDS);
  }

  // The caller gave up while waiting (client gone, health probe timed out): the kind got gives an
  // aborted call, so callers treat both alike.
  private cancelled(): UpstreamError {
    return new UpstreamError('reset', this.upstream, `${this.upstream} service: call cancelled while waiting for a slot`);
  }
}
