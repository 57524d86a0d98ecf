// Errors are values with a status and a body; the error handler (middleware/errorHandler.ts) is
// the one place that turns them into responses.

/** An answer the gateway decided on (400, 403, 413...), with Flask's body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof body.msg === 'string' ? body.msg : `HTTP ${status}`);
    this.name = 'HttpError';
  }
}

export type UpstreamName = 'avatar' | 'tts' | 'webrtc';

/**
 * What can go wrong calling an upstream. `connect` covers refused, DNS and answers that are not
 * HTTP; `reset` a connection that broke after it was made; `invalid_json` and `too_large` are
 * bodies the gateway had to parse. An HTTP status is an answer, not a failure: each route maps it.
 */
export type UpstreamErrorKind = 'connect' | 'reset' | 'timeout' | 'invalid_json' | 'too_large' | 'busy' | 'circuit_open';

export class UpstreamError extends Error {
  constructor(
    readonly kind: UpstreamErrorKind,
    readonly upstream: UpstreamName,
    message: string,
    readonly text?: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}
