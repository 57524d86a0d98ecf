// The bench's handle on the simulated avatar service running in its own process (simHelper.ts).
import type { RecordedFile } from '../../sim/types.js';
import { forkHelper } from './processes.js';

export interface SimulatorProcess {
  url: string;
  pid: number;
  setLatency(ms: number): Promise<void>;
  /** Files received by the service since the last forget(), with their size and sha256. */
  uploads(): Promise<RecordedFile[]>;
  forget(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSimulator(latencyMs: number, keepAliveTimeoutMs = 5000): Promise<SimulatorProcess> {
  const helper = await forkHelper('./simHelper.ts', [String(latencyMs), String(keepAliveTimeoutMs)]);
  return {
    url: helper.url,
    pid: helper.pid,
    setLatency: (ms) => helper.ask({ type: 'latency', ms }),
    uploads: () => helper.ask({ type: 'uploads' }),
    forget: () => helper.ask({ type: 'forget' }),
    stop: () => helper.stop(),
  };
}
