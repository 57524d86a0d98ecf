// Every setting the gateway reads, typed and checked once at start-up (the counterpart of the
// Flask original's config.py). Nothing else reads process.env: handlers get a Config passed in.
// Variable names are the Flask original's wherever it had one, so an existing .env keeps working.
import os from 'node:os';

export type Env = Record<string, string | undefined>;

export interface UpstreamUrls {
  avatar: URL;
  tts: URL;
  webrtc: URL;
}

export interface Config {
  nodeEnv: string;
  port: number;
  host: string;
  upstreams: UpstreamUrls;
  jwt: {
    secretKey?: string;
    algorithm: string;
    decodeLeewaySeconds: number;
    identityClaim: string;
    jwksUri?: string;
    issuer?: string;
    audience?: string;
  };
  databaseUrl?: string;
  avatarManagerRoles: string[];
  ttsModelInfoPath?: string;
  corsOrigins?: string[];
  timeouts: {
    upstreamMs: number;
    avatarStartMs: number;
    avatarAddMs: number;
    webrtcMs: number;
    healthProbeMs: number;
  };
  pool: {
    maxSockets: number;
    maxFreeSockets: number;
    idleSocketMs: number;
    retryLimit: number;
    retryBackoffMs: number;
    maxJsonBytes: number;
  };
  bulkhead: {
    maxInFlight: number;
    queueSize: number;
    queueTimeoutMs: number;
  };
  breaker: {
    failureThreshold: number;
    cooldownMs: number;
  };
  limits: {
    maxUploadBytes: number;
    maxFormBytes: number;
    maxHeaderBytes: number;
  };
  server: {
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    bodyIdleTimeoutMs: number;
    keepAliveTimeoutMs: number;
    shutdownTimeoutMs: number;
  };
  log: {
    level: string;
    dir: string;
  };
  workers: number;
  metricsToken?: string;
}

export class ConfigError extends Error {
  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'];
// JWT_ALGORITHM names what JWT_SECRET_KEY verifies, so only the shared-secret ones (an identity
// provider's RS256/ES256 keys come from JWKS_URI).
const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512'];

// Reads one variable; the empty string counts as unset (api.md, "Limits, load and shutdown").
class EnvReader {
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  int(name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value)) throw new ConfigError(name, `expected a whole number, got "${value}"`);
    const n = Number(value);
    if (n < min || n > max) throw new ConfigError(name, `expected a number from ${min} to ${max}, got ${n}`);
    return n;
  }

  url(name: string, fallback: string): URL {
    const value = this.string(name, fallback);
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new ConfigError(name, `expected an http:// or https:// URL, got "${value}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(name, `expected an http:// or https:// URL, got "${value}"`);
    }
    return url;
  }

  oneOf(name: string, fallback: string, allowed: string[]): string {
    const value = this.string(name, fallback);
    if (!allowed.includes(value)) throw new ConfigError(name, `expected one of ${allowed.join(', ')}, got "${value}"`);
    return value;
  }

  list(name: string): string[] | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    const items = value.split(',').map((item) => item.trim()).filter(Boolean);
    if (items.length === 0) throw new ConfigError(name, 'expected a comma-separated list');
    return items;
  }
}

export function loadConfig(env: Env = process.env): Config {
  const read = new EnvReader(env);
  const jwt = {
    // Not trimmed: a secret that ends in a space or a newline (a mounted secret file) is what Flask signs with.
    secretKey: read.raw('JWT_SECRET_KEY') && env.JWT_SECRET_KEY,
    algorithm: read.oneOf('JWT_ALGORITHM', 'HS256', JWT_ALGORITHMS),
    decodeLeewaySeconds: read.int('JWT_DECODE_LEEWAY', 0, 0, 86400),
    identityClaim: read.string('JWT_IDENTITY_CLAIM', 'sub'),
    jwksUri: read.raw('JWKS_URI') && read.url('JWKS_URI', '').toString(),
    issuer: read.raw('JWT_ISSUER'),
    audience: read.raw('JWT_AUDIENCE'),
  };
  if (!jwt.secretKey && !jwt.jwksUri) {
    throw new ConfigError('JWT_SECRET_KEY', 'required (the Flask backend\'s secret), unless JWKS_URI is set');
  }
  const databaseUrl = read.raw('DATABASE_URL');
  if (databaseUrl !== undefined && !databaseUrl.startsWith('sqlite:///')) {
    throw new ConfigError('DATABASE_URL', `only sqlite:///<path> is supported, got "${databaseUrl.split(':')[0]}:..."`);
  }
  const server = {
    headersTimeoutMs: read.int('HEADERS_TIMEOUT_MS', 20_000, 1),
    requestTimeoutMs: read.int('REQUEST_TIMEOUT_MS', 0, 0),
    bodyIdleTimeoutMs: read.int('BODY_IDLE_TIMEOUT_MS', 30_000, 1),
    keepAliveTimeoutMs: read.int('KEEP_ALIVE_TIMEOUT_MS', 65_000, 1),
    shutdownTimeoutMs: read.int('SHUTDOWN_TIMEOUT_MS', 30_000, 1),
  };
  // Node's http.createServer throws on this pair: refuse it here, naming the variable.
  if (server.requestTimeoutMs > 0 && server.headersTimeoutMs > server.requestTimeoutMs) {
    throw new ConfigError('HEADERS_TIMEOUT_MS', `must not exceed REQUEST_TIMEOUT_MS (${server.requestTimeoutMs}), got ${server.headersTimeoutMs}`);
  }
  // performance.md's 5000 users at once, each waiting on its own connection, with room to spare.
  const maxSockets = read.int('UPSTREAM_MAX_SOCKETS', 8192, 1);
  const workers = read.raw('WORKERS') === 'auto' ? os.availableParallelism() : read.int('WORKERS', 1, 1, 256);

  return {
    nodeEnv: read.string('NODE_ENV', 'development'),
    port: read.int('PORT', 8203, 0, 65535),
    host: read.string('HOST', '0.0.0.0'),
    upstreams: {
      avatar: read.url('AVATAR_SERVICE_URL', 'http://localhost:8606'),
      tts: read.url('TTS_SERVICE_URL', 'http://localhost:8604'),
      webrtc: read.url('WEBRTC_SERVICE_URL', 'http://localhost:8615'),
    },
    jwt,
    databaseUrl,
    avatarManagerRoles: (read.list('AVATAR_MANAGER_ROLES') ?? ['tutor']).map((role) => role.toLowerCase()),
    ttsModelInfoPath: read.raw('TTS_MODEL_INFO_PATH'),
    corsOrigins: read.list('CORS_ORIGINS'),
    timeouts: {
      upstreamMs: read.int('UPSTREAM_TIMEOUT_MS', 10_000, 1),
      avatarStartMs: read.int('AVATAR_START_TIMEOUT_MS', 60_000, 1),
      avatarAddMs: read.int('AVATAR_ADD_TIMEOUT_MS', 900_000, 1),
      webrtcMs: read.int('WEBRTC_TIMEOUT_MS', 30_000, 1),
      healthProbeMs: read.int('HEALTH_PROBE_TIMEOUT_MS', 2_000, 1),
    },
    pool: {
      maxSockets,
      maxFreeSockets: read.int('UPSTREAM_MAX_FREE_SOCKETS', 256, 0),
      idleSocketMs: read.int('UPSTREAM_IDLE_SOCKET_MS', 4_000, 1),
      // api.md: an idempotent call is retried at most once.
      retryLimit: read.int('UPSTREAM_RETRY_LIMIT', 1, 0, 1),
      retryBackoffMs: read.int('UPSTREAM_RETRY_BACKOFF_MS', 100, 0, 10_000),
      maxJsonBytes: read.int('UPSTREAM_MAX_JSON_BYTES', 10 * 1024 * 1024, 1),
    },
    bulkhead: {
      // A call past the pool would wait for a socket with no timeout at all; capped, it waits in the
      // bulkhead's queue, which has one (UPSTREAM_QUEUE_TIMEOUT_MS).
      maxInFlight: Math.min(read.int('UPSTREAM_MAX_IN_FLIGHT', 8192, 1), maxSockets),
      queueSize: read.int('UPSTREAM_QUEUE_SIZE', 10_000, 0),
      queueTimeoutMs: read.int('UPSTREAM_QUEUE_TIMEOUT_MS', 30_000, 1),
    },
    breaker: {
      failureThreshold: read.int('BREAKER_FAILURE_THRESHOLD', 20, 1),
      cooldownMs: read.int('BREAKER_COOLDOWN_MS', 10_000, 1),
    },
    limits: {
      maxUploadBytes: read.int('MAX_UPLOAD_BYTES', 2 * 1024 ** 3, 1),
      maxFormBytes: read.int('MAX_FORM_BYTES', 1024 * 1024, 1),
      maxHeaderBytes: read.int('MAX_HEADER_BYTES', 16 * 1024, 1024, 1024 * 1024),
    },
    server,
    log: {
      level: read.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
      dir: read.string('LOG_DIR', 'logs'),
    },
    workers,
    metricsToken: read.raw('METRICS_TOKEN'),
  };
}
