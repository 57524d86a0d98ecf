// The shape every simulated upstream shares, so tests, the demo, the bench and docker-compose
// start and steer them the same way.

export interface SimulatedServiceOptions {
  host?: string;             // default 127.0.0.1
  port?: number;             // default 0 (ephemeral)
  latencyMs?: number;        // added before every answer (the GPU's thinking time)
  /** Per path (no query): replaces latencyMs there, e.g. a slow /avatar/start beside a quick list. */
  routeLatencyMs?: Record<string, number>;
  keepAliveTimeoutMs?: number; // default 5000, like uvicorn
  /** How long a connection closed as idle takes to look closed to the client (the network's latency); default 0. */
  finDelayMs?: number;
  /** The size of a body in huge-body mode; default just past 10 MB (UPSTREAM_MAX_JSON_BYTES' default). */
  hugeBodyBytes?: number;
}

export interface RecordedFile {
  field: string;
  filename: string;
  contentType: string;
  size: number;
  sha256: string;
}

export interface RecordedRequest {
  method: string;
  /** Path and query exactly as received on the request line. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /** Content-Type's media type, or '' without a body. */
  encoding: string;
  /** Form fields in arrival order (repeats kept); JSON bodies as parsed; undefined when none. */
  fields?: Array<[string, string]>;
  json?: unknown;
  files: RecordedFile[];
  /** Raw body bytes for small non-form bodies (e.g. WebRTC offers), size and hash otherwise. */
  bodySize: number;
  bodySha256: string;
  body?: Buffer;
}

export interface SimulatedService {
  url: string;
  port: number;
  /** Every request received, oldest first. */
  requests: RecordedRequest[];
  /** Switch the failure mode (see each service's Mode type); 'normal' restores it. */
  setMode(mode: string): void;
  setLatency(ms: number): void;
  /** Requests that came on a connection the service had already closed as idle (each met a reset). */
  lateRequests(): number;
  close(): Promise<void>;
}
