// What a run measured, phase by phase: the tables, the aims and the report are all built from this.
import type { RecordedFile } from '../sim/types.js';
import type { BurstResult } from './clients/burst.js';
import type { LoadResult } from './clients/load.js';
import type { SoakResult } from './clients/soak.js';
import type { UploadResult } from './clients/upload.js';
import type { BenchOptions } from './options.js';
import type { SampleSeries } from './procs/sampler.js';

/** before: the gateway with a pool of one connection (the blocking original); after: as shipped. */
export type BurstMode = 'before' | 'after' | 'direct' | 'target';

export interface BurstRow {
  mode: BurstMode;
  users: number;
  result?: BurstResult;
  /** Why the row was not run. */
  skipped?: string;
  baselineRssBytes?: number;
  peakRssBytes?: number;
}

export type Peer = 'direct' | 'bare Node proxy' | 'gateway' | 'target';

export interface LoadRow {
  peer: Peer;
  many: LoadResult;
  one: LoadResult;
}

export interface UploadRow {
  path: 'direct' | 'gateway';
  result: UploadResult;
  received?: RecordedFile;
  sha256Ok: boolean;
  rssGrowthBytes?: number;
}

export interface BenchResults {
  startedAt: Date;
  options: BenchOptions;
  /** How each gateway under test was started (command line and settings). */
  gatewayCommands: string[];
  burst?: { latencyMs: number; rows: BurstRow[] };
  throughput?: { connections: number; durationS: number; rows: LoadRow[] };
  upload?: { sizeBytes: number; sha256: string; rows: UploadRow[] };
  soak?: { ratePerSecond: number; upstreamLatencyMs: number; result: SoakResult; samples?: SampleSeries };
}
