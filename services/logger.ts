// winston, set up like the Flask original's logging: people read the console, errors with their
// stacks also go to LOG_DIR/error.log. Production writes JSON lines for log collectors.
import fs from 'node:fs';
import path from 'node:path';
import winston from 'winston';
import { ConfigError, type Config } from '../config.js';

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

// The loggers flushLogger has ended, and when each finished. Kept here because winston's streams
// (readable-stream 3) have no writableEnded to ask.
const flushes = new WeakMap<Logger, Promise<void>>();

export function createLogger(config: Pick<Config, 'log' | 'nodeEnv'>, console: winston.transport = new winston.transports.Console()): Logger {
  try {
    fs.mkdirSync(config.log.dir, { recursive: true });
  } catch (error) {
    throw new ConfigError('LOG_DIR', `cannot create the directory "${config.log.dir}" (${(error as NodeJS.ErrnoException).code})`);
  }
  const lineFormat = config.nodeEnv === 'production' ? winston.format.json() : consoleFormat;
  const logger = winston.createLogger({
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
  // Once flushed on exit, a late line (a connection closing after the flush) is dropped: written,
  // it would fail with "write after end" and turn a clean exit into a crash. Every level method and
  // child logger writes through here.
  const write = logger.write.bind(logger);
  logger.write = ((...args: Parameters<typeof write>) => !flushes.has(logger) && write(...args)) as typeof logger.write;
  return logger;
}

/** Resolves once every transport has written what it was given (used on exit; again is harmless). */
export function flushLogger(logger: Logger): Promise<void> {
  let flushed = flushes.get(logger);
  if (!flushed) {
    flushed = new Promise((resolve) => {
      logger.once('finish', () => resolve());
      logger.end();
    });
    flushes.set(logger, flushed);
  }
  return flushed;
}

/** Whether flushLogger has ended this logger: what is logged now goes nowhere. */
export const loggerFlushed = (logger: Logger): boolean => flushes.has(logger);
