// What every phase gets: the options, the tokens, the simulated avatar service (none when
// measuring --target), a way to start the gateway under test pointed at it, and the results.
import type { BenchOptions } from './options.js';
import { startGatewayProcess, type GatewayProcess } from './procs/processes.js';
import type { SimulatorProcess } from './procs/simulator.js';
import type { Progress } from './progress.js';
import type { BenchResults } from './results.js';
import type { BenchTokens } from './tokens.js';

export interface BenchContext {
  options: BenchOptions;
  tokens: BenchTokens;
  sim?: SimulatorProcess;
  progress: Progress;
  results: BenchResults;
  /** The gateway under test, with `env` on top of the bench's settings and --gateway-env. */
  startGateway(env?: Record<string, string>): Promise<GatewayProcess>;
}

export function createContext(options: BenchOptions, tokens: BenchTokens, sim: SimulatorProcess | undefined, progress: Progress): BenchContext {
  const results: BenchResults = { startedAt: new Date(), options, gatewayCommands: [] };
  return {
    options,
    tokens,
    sim,
    progress,
    results,
    async startGateway(env = {}) {
      if (!sim) throw new Error('no simulated service to point a gateway at (--target)');
      const gateway = await startGatewayProcess({
        JWT_SECRET_KEY: tokens.secret,
        AVATAR_SERVICE_URL: sim.url,
        TTS_SERVICE_URL: sim.url,
        WEBRTC_SERVICE_URL: sim.url,
        ...options.gatewayEnv,
        ...env,
      }, options.profileDir);
      if (!results.gatewayCommands.includes(gateway.command)) results.gatewayCommands.push(gateway.command);
      return gateway;
    },
  };
}
