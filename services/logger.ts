// winston, set up like the Flask original's logging: people read the console, errors with their
// stacks also go to LOG_DIR/error.log. Production writes JSON lines for log collectors.
import fs from 'node:fs';
import path from 'node:path';
import winston from 'winston';
import type { Config } from '../config.js';

export type Logger = winston.Logger;

const consoleFormat = winston.format.printf(({ timestamp, level, message, stack, ...meta }) => {
  const fields = Object.entries(meta)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  return `${timestamp} ${level.toUpperCase()} ${message}${fields ? ' ' + fields : ''}${stack ? '\n' + stack : ''}`;
});

// Call sites log an error as `{ error }`: JSON would keep none of an Error's message or stack.
const errorMeta = winston.format((info) => {
  if (info.error instanceof Error) {
    info.stack ??= info.error.stack;
    info.error = info.error.message;
  }
  return info;
});

export function createLogger(config: Pick<Config, 'log' | 'nodeEnv'>, console: winston.transport = new winston.transports.Console()): Logger {
  fs.mkdirSync(config.log.dir, { recursive: true });
  const lineFormat = config.nodeEnv === 'production' ? winston.format.json() : consoleFormat;
  return winston.createLogger({
    level: config.log.level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), errorMeta()),
    transports: [
      Object.assign(console, { format: lineFormat }),
      new winston.transports.File({
        filename: path.join(config.log.dir, 'error.log'),
        level: 'error',
        format: winston.format.json(),
      }),
    ],
  });
}

/** Resolves once every transport has written what it was given (used on shutdown). */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    logger.on('finish', () => resolve());
    logger.end();
  });
}
