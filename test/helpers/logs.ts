// A winston logger that keeps its lines in memory, for unit tests of modules that log.
import { Writable } from 'node:stream';
import winston from 'winston';

export function captureLogger(level = 'debug'): { logger: winston.Logger; lines(): Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = winston.createLogger({
    level,
    format: winston.format.json(),
    transports: [new winston.transports.Stream({
      stream: new Writable({
        write(chunk, _encoding, done) {
          lines.push(JSON.parse(String(chunk)));
          done();
        },
      }),
    })],
  });
  return { logger, lines: () => lines };
}
