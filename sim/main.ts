// Runs the three simulated upstreams (avatar, TTS, WebRTC signalling) for the demo and
// docker-compose: `tsx sim/main.ts [--host H] [--avatar-port N] [--tts-port N] [--webrtc-port N]
// [--latency-ms N]`. Ports default to those of AVATAR_SERVICE_URL, TTS_SERVICE_URL and
// WEBRTC_SERVICE_URL when set (the gateway's own .env), else to .env.example's 8606, 8604, 8615.
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startAvatarService } from './avatarService.js';
import { startTtsService } from './ttsService.js';
import type { SimulatedService } from './types.js';
import { startWebrtcService } from './webrtcService.js';

const USAGE = 'usage: tsx sim/main.ts [--host 127.0.0.1] [--avatar-port 8606] [--tts-port 8604] [--webrtc-port 8615] [--latency-ms 0]';

type Env = Record<string, string | undefined>;

function portOf(url: string | undefined, fallback: number): number {
  if (!url) return fallback;
  const parsed = new URL(url);
  return parsed.port ? Number(parsed.port) : fallback;
}

function number(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new Error(`--${name}: expected a whole number, got "${value}"`);
  return Number(value);
}

/** `routeLatencyMs` (the demo's realistic times per route) applies to every service it names a path of. */
export async function startSimulators(argv: string[], env: Env, routeLatencyMs?: Record<string, number>): Promise<Record<string, SimulatedService>> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      'avatar-port': { type: 'string' },
      'tts-port': { type: 'string' },
      'webrtc-port': { type: 'string' },
      'latency-ms': { type: 'string' },
    },
  });
  const host = values.host ?? env.SIM_HOST ?? '127.0.0.1';
  const latencyMs = number('latency-ms', values['latency-ms'] ?? env.SIM_LATENCY_MS, 0);
  const port = (name: string, url: string | undefined, fallback: number) => number(`${name}-port`, values[`${name}-port` as 'tts-port'], portOf(url, fallback));

  const services: Record<string, SimulatedService> = {};
  try {
    services.avatar = await startAvatarService({ host, latencyMs, routeLatencyMs, port: port('avatar', env.AVATAR_SERVICE_URL, 8606) });
    services.tts = await startTtsService({ host, latencyMs, routeLatencyMs, port: port('tts', env.TTS_SERVICE_URL, 8604) });
    services.webrtc = await startWebrtcService({ host, latencyMs, routeLatencyMs, port: port('webrtc', env.WEBRTC_SERVICE_URL, 8615) });
  } catch (error) {
    await Promise.all(Object.values(services).map((service) => service.close()));
    throw error;
  }
  return services;
}

async function main(): Promise<void> {
  let services: Record<string, SimulatedService>;
  try {
    services = await startSimulators(process.argv.slice(2), process.env);
  } catch (error) {
    console.error(`simulators: ${(error as Error).message}\n${USAGE}`);
    process.exit(1);
  }
  for (const [name, service] of Object.entries(services)) console.log(`simulated ${name} service on ${service.url}`);
  const stop = () => {
    void Promise.all(Object.values(services).map((service) => service.close())).then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
