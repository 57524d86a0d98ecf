// Starts the real gateway (startGateway: http server, app, client) on 127.0.0.1 with an ephemeral
// port, configured by an env object exactly like production, and keeps every log line it writes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { loadConfig, type Config } from '../../config.js';
import { startGateway, type RunningGateway } from '../../server.js';
import { createLogger } from '../../services/logger.js';

export const TEST_SECRET = 'test-secret-key-for-the-gateway-suite';

export interface TestGateway {
  url: string;
  config: Config;
  gateway: RunningGateway;
  /** Every line logged so far (console format), for assertions on what is (not) logged. */
  logs(): string;
  close(): Promise<void>;
}

export function testEnv(env: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    NODE_ENV: 'test',
    LOG_LEVEL: 'debug',
    LOG_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'gateway-logs-')),
    JWT_SECRET_KEY: TEST_SECRET,
    // Nothing listens here unless a test starts a simulator and overrides these.
    AVATAR_SERVICE_URL: 'http://127.0.0.1:9',
    TTS_SERVICE_URL: 'http://127.0.0.1:9',
    WEBRTC_SERVICE_URL: 'http://127.0.0.1:9',
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...env,
  };
}

export async function startTestGateway(env: Record<string, string | undefined> = {}): Promise<TestGateway> {
  const config = loadConfig(testEnv(env));
  const lines: string[] = [];
  const sink = new winston.transports.Stream({
    stream: new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  });
  const logger = createLogger(config, sink);
  const gateway = await startGateway(config, logger);
  const address = gateway.server.address();
  if (!address || typeof address !== 'object') throw new Error('gateway did not listen');
  return {
    url: `http://127.0.0.1:${address.port}`,
    config,
    gateway,
    logs: () => lines.join(''),
    close: () => gateway.shutdown('test finished'),
  };
}
