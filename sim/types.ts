// The shape every simulated upstream shares, so tests, the demo, the bench and docker-compose
// start and steer them the same way.

export interface SimulatedServiceOptions {
  host?: string;             // default 127.0.0.1
  port?: number;             // default 0 (ephemeral)
  latencyMs?: number;        // added before every answer (the GPU's thinking time)
  keepAliveTimeoutMs?: number; // default 5000, like uvicorn
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
  close(): Promise<void>;
}
