// Asks each upstream whether it answers at all (any HTTP status counts): used by
// /api/health/detailed and by the start-up log lines.
import type { Config } from '../config.js';
import type { UpstreamName } from './errors.js';
import type { HttpClient } from './httpClient.js';

export interface UpstreamProbe {
  state: 'up' | 'down';
  latency_ms: number;
  error?: string;
}

/** The upstreams this configuration calls (the TTS service is not one when models come from a file). */
export function usedUpstreams(config: Pick<Config, 'ttsModelInfoPath'>): UpstreamName[] {
  return config.ttsModelInfoPath ? ['avatar', 'webrtc'] : ['avatar', 'tts', 'webrtc'];
}

export async function probeUpstreams(
  config: Pick<Config, 'ttsModelInfoPath' | 'timeouts'>,
  httpClient: HttpClient,
): Promise<Partial<Record<UpstreamName, UpstreamProbe>>> {
  const names = usedUpstreams(config);
  const probes = await Promise.all(names.map(async (name): Promise<UpstreamProbe> => {
    const started = performance.now();
    const latency = () => Math.round(performance.now() - started);
    try {
      // The signal also bounds a wait in a full bulkhead's queue: a busy upstream reports down in time.
      const signal = AbortSignal.timeout(config.timeouts.healthProbeMs);
      await httpClient.request(name, { path: '/', timeoutMs: config.timeouts.healthProbeMs, signal });
      return { state: 'up', latency_ms: latency() };
    } catch (error) {
      return { state: 'down', latency_ms: latency(), error: (error as Error).message };
    }
  }));
  return Object.fromEntries(names.map((name, i) => [name, probes[i]]));
}
