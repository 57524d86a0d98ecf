// `npm run demo [-- --port N --avatar-port N --tts-port N --webrtc-port N]`: the simulated avatar,
// TTS and WebRTC services (sim/main.ts) with realistic but shortened latencies, and the gateway
// pointed at them, in this one process; prints the tokens and a curl line per route, then the
// gateway's own log. Ports default to .env's (0 = any free port). Ctrl-C stops everything.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import dotenv from 'dotenv';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { startGateway, type RunningGateway } from '../server.js';
import { createLogger, flushLogger, type Logger } from '../services/logger.js';
import { startSimulators } from '../sim/main.js';
import type { SimulatedService } from '../sim/types.js';
import { DEMO_LATENCY_MS, demoGuide } from './demoGuide.js';
import { issueToken } from './token.js';

const USAGE = 'usage: npm run demo [-- --port 8203 --avatar-port 8606 --tts-port 8604 --webrtc-port 8615]  (0 = any free port)';
const PORT_FLAGS = ['avatar-port', 'tts-port', 'webrtc-port'] as const;
// How long the gateway's start-up probe of the services may take before the guide is printed anyway.
const PROBE_WAIT_MS = 3000;

type Services = Record<string, SimulatedService>;

function fail(message: string): never {
  console.error(`demo: ${message}`);
  process.exit(1);
}

function explain(error: unknown): string {
  const { code, port } = error as NodeJS.ErrnoException & { port?: number };
  if (code === 'EADDRINUSE') {
    return `port ${port} is already in use (another demo, \`npm start\` or sim/main.ts?). Stop it, or pick other ports:\n${USAGE}`;
  }
  if (error instanceof ConfigError) return `configuration error: ${error.message} (run ./install_deps.sh to create .env)`;
  return (error as Error).message;
}

/** A small file that starts like an MP4 (an ftyp box), for the add line: the service checks the extension and that it is not empty. */
function writeSampleVideo(dir: string): string {
  const ftyp = Buffer.from('00000018667479706973366d0000020069736f6d69736f32', 'hex');
  const file = path.join(dir, 'face.mp4');
  fs.writeFileSync(file, Buffer.concat([ftyp, Buffer.alloc(64 * 1024, 0x2a)]));
  return file;
}

/** The gateway probes each service once at start-up; its log lines belong before the guide. */
async function probed(services: Services): Promise<void> {
  const deadline = Date.now() + PROBE_WAIT_MS;
  while (Date.now() < deadline && !Object.values(services).every((service) => service.requests.some((request) => request.url === '/'))) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function parseFlags() {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      options: {
        port: { type: 'string' },
        'avatar-port': { type: 'string' },
        'tts-port': { type: 'string' },
        'webrtc-port': { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    fail(`${(error as Error).message}\n${USAGE}`);
  }
}

async function main(): Promise<void> {
  const flags = parseFlags();
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  dotenv.config({ quiet: true });

  const simArgs = PORT_FLAGS.flatMap((flag) => (flags[flag] === undefined ? [] : [`--${flag}`, flags[flag]]));
  let services: Services;
  try {
    services = await startSimulators(simArgs, process.env, DEMO_LATENCY_MS);
  } catch (error) {
    fail(explain(error));
  }
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'avatar-demo-'));
  const cleanUp = async () => {
    await Promise.all(Object.values(services).map((service) => service.close()));
    fs.rmSync(scratch, { recursive: true, force: true });
  };

  let config: Config;
  let logger: Logger;
  let gateway: RunningGateway;
  try {
    config = loadConfig({
      ...process.env,
      ...(flags.port !== undefined && { PORT: flags.port }),
      AVATAR_SERVICE_URL: services.avatar.url,
      TTS_SERVICE_URL: services.tts.url,
      WEBRTC_SERVICE_URL: services.webrtc.url,
    });
    logger = createLogger(config);
    gateway = await startGateway(config, logger);
  } catch (error) {
    await cleanUp();
    fail(explain(error));
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      console.error(`second ${signal}: exiting at once`);
      process.exit(1);
    }
    stopping = true;
    console.log(`\n${signal}: stopping the gateway and the simulated services`);
    void gateway.shutdown(signal).then(cleanUp).then(() => flushLogger(logger)).then(() => {
      console.log('demo stopped');
      process.exit(0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  await probed(services);
  const { port } = gateway.server.address() as { port: number };
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const issue = (sub: string, role: string) => issueToken(config, { sub, role });
  console.log(demoGuide({
    gatewayUrl: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    upstreams: { avatar: services.avatar.url, tts: services.tts.url, webrtc: services.webrtc.url },
    tutorToken: issue('tutor@example.com', 'tutor'),
    studentToken: issue('student@example.com', 'student'),
    videoPath: writeSampleVideo(scratch),
    metricsToken: config.metricsToken,
  }));
}

await main();
