// config.ts: the defaults of api.md/upstreams.md, and a bad value refused with its variable named.
import { expect } from 'chai';
import { ConfigError, loadConfig, type Env } from '../config.js';

const REQUIRED: Env = { JWT_SECRET_KEY: 'secret' };

function refusal(env: Env): ConfigError {
  try {
    loadConfig({ ...REQUIRED, ...env });
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be refused`);
}

describe('config', () => {
  describe('defaults', () => {
    const config = loadConfig(REQUIRED);

    it('listens on 0.0.0.0:8203 in development', () => {
      expect(config).to.include({ port: 8203, host: '0.0.0.0', nodeEnv: 'development' });
    });

    it('points at the Flask original\'s three upstreams', () => {
      expect(config.upstreams.avatar.href).to.equal('http://localhost:8606/');
      expect(config.upstreams.tts.href).to.equal('http://localhost:8604/');
      expect(config.upstreams.webrtc.href).to.equal('http://localhost:8615/');
    });

    it('uses the timeouts of api.md and a 2 s health probe', () => {
      expect(config.timeouts).to.deep.equal({
        upstreamMs: 10_000,
        avatarStartMs: 60_000,
        avatarAddMs: 900_000,
        webrtcMs: 30_000,
        healthProbeMs: 2_000,
      });
    });

    it('sizes the pool for thousands of waiting calls and retires idle sockets before uvicorn\'s 5 s', () => {
      expect(config.pool).to.include({ maxSockets: 8192, retryLimit: 1, maxJsonBytes: 10 * 1024 * 1024 });
      expect(config.pool.idleSocketMs).to.be.below(5000);
      expect(config.pool.maxFreeSockets).to.be.within(1, config.pool.maxSockets);
      expect(config.bulkhead.maxInFlight).to.be.within(5000, config.pool.maxSockets);
    });

    it('never lets more calls run than the pool has sockets (a call past it would wait with no timeout)', () => {
      const small = loadConfig({ ...REQUIRED, UPSTREAM_MAX_SOCKETS: '1', UPSTREAM_MAX_IN_FLIGHT: '500' });
      expect(small.bulkhead.maxInFlight).to.equal(1);
      expect(loadConfig({ ...REQUIRED, UPSTREAM_MAX_IN_FLIGHT: '500' }).bulkhead.maxInFlight).to.equal(500);
    });

    it('keeps JWT_SECRET_KEY byte for byte: a trailing newline is part of the secret', () => {
      expect(loadConfig({ JWT_SECRET_KEY: ' s3cret\n' }).jwt.secretKey).to.equal(' s3cret\n');
      expect(() => loadConfig({ JWT_SECRET_KEY: '  ' })).to.throw(/^JWT_SECRET_KEY: required/);
    });

    it('logs at info into logs/, shuts down within 30 s, allows every origin and the tutor role', () => {
      expect(config.log).to.deep.equal({ level: 'info', dir: 'logs' });
      expect(config.server.shutdownTimeoutMs).to.equal(30_000);
      expect(config.corsOrigins).to.equal(undefined);
      expect(config.avatarManagerRoles).to.deep.equal(['tutor']);
      expect(config.jwt).to.include({ secretKey: 'secret', algorithm: 'HS256', identityClaim: 'sub' });
    });

    it('treats an empty or blank variable as unset', () => {
      const blank = loadConfig({ ...REQUIRED, PORT: '', HOST: '  ', LOG_LEVEL: '', CORS_ORIGINS: '' });
      expect(blank).to.include({ port: 8203, host: '0.0.0.0' });
      expect(blank.log.level).to.equal('info');
      expect(blank.corsOrigins).to.equal(undefined);
    });
  });

  describe('values given', () => {
    it('reads numbers, URLs, lists and levels', () => {
      const config = loadConfig({
        ...REQUIRED,
        PORT: '9000',
        HOST: '127.0.0.1',
        AVATAR_SERVICE_URL: 'http://gpu-box:8606/base',
        CORS_ORIGINS: 'http://localhost:3000, https://app.example',
        UPSTREAM_TIMEOUT_MS: '300',
        LOG_LEVEL: 'debug',
        LOG_DIR: '/var/log/gateway',
        SHUTDOWN_TIMEOUT_MS: '5000',
        NODE_ENV: 'production',
      });
      expect(config).to.include({ port: 9000, host: '127.0.0.1', nodeEnv: 'production' });
      expect(config.upstreams.avatar.href).to.equal('http://gpu-box:8606/base');
      expect(config.corsOrigins).to.deep.equal(['http://localhost:3000', 'https://app.example']);
      expect(config.timeouts.upstreamMs).to.equal(300);
      expect(config.log).to.deep.equal({ level: 'debug', dir: '/var/log/gateway' });
      expect(config.server.shutdownTimeoutMs).to.equal(5000);
    });

    it('accepts PORT=0 (an ephemeral port, as the tests use)', () => {
      expect(loadConfig({ ...REQUIRED, PORT: '0' }).port).to.equal(0);
    });

    it('needs no JWT_SECRET_KEY when JWKS_URI is set', () => {
      expect(loadConfig({ JWKS_URI: 'https://auth.example/.well-known/jwks.json' }).jwt.jwksUri).to.equal('https://auth.example/.well-known/jwks.json');
    });
  });

  describe('a bad value is refused, naming the variable', () => {
    const cases: Array<[string, Env, RegExp]> = [
      ['a missing secret', { JWT_SECRET_KEY: undefined }, /^JWT_SECRET_KEY: required/],
      ['a number that is not one', { PORT: 'eighty' }, /^PORT: expected a whole number, got "eighty"$/],
      ['a negative number', { UPSTREAM_TIMEOUT_MS: '-5' }, /^UPSTREAM_TIMEOUT_MS: expected a whole number/],
      ['a fraction', { SHUTDOWN_TIMEOUT_MS: '1.5' }, /^SHUTDOWN_TIMEOUT_MS: expected a whole number/],
      ['a port out of range', { PORT: '70000' }, /^PORT: expected a number from 0 to 65535, got 70000$/],
      ['a zero timeout', { AVATAR_ADD_TIMEOUT_MS: '0' }, /^AVATAR_ADD_TIMEOUT_MS: expected a number from 1 to/],
      ['a zero pool', { UPSTREAM_MAX_SOCKETS: '0' }, /^UPSTREAM_MAX_SOCKETS: /],
      ['more retries than the spec allows', { UPSTREAM_RETRY_LIMIT: '2' }, /^UPSTREAM_RETRY_LIMIT: expected a number from 0 to 1, got 2$/],
      ['a URL that is not one', { AVATAR_SERVICE_URL: 'localhost:8606' }, /^AVATAR_SERVICE_URL: expected an http:\/\/ or https:\/\/ URL/],
      ['a URL of another scheme', { TTS_SERVICE_URL: 'ftp://tts:8604' }, /^TTS_SERVICE_URL: expected an http:\/\/ or https:\/\/ URL, got "ftp:\/\/tts:8604"$/],
      ['an unparsable URL', { WEBRTC_SERVICE_URL: 'http://' }, /^WEBRTC_SERVICE_URL: /],
      ['a bad JWKS URL', { JWKS_URI: 'not a url' }, /^JWKS_URI: /],
      ['an unknown log level', { LOG_LEVEL: 'loud' }, /^LOG_LEVEL: expected one of error, warn, info/],
      ['an unknown algorithm', { JWT_ALGORITHM: 'none' }, /^JWT_ALGORITHM: expected one of /],
      ['a list with no item', { CORS_ORIGINS: ' , ,' }, /^CORS_ORIGINS: expected a comma-separated list$/],
      ['a database other than SQLite', { DATABASE_URL: 'postgres://user:pw@db/app' }, /^DATABASE_URL: only sqlite:\/\/\/<path> is supported, got "postgres:..."$/],
      ['a worker count out of range', { WORKERS: '0' }, /^WORKERS: /],
      ['a headers timeout Node would refuse', { REQUEST_TIMEOUT_MS: '1000', HEADERS_TIMEOUT_MS: '20000' }, /^HEADERS_TIMEOUT_MS: must not exceed REQUEST_TIMEOUT_MS/],
      ['a header limit below 1 KiB', { MAX_HEADER_BYTES: '100' }, /^MAX_HEADER_BYTES: /],
    ];
    for (const [what, env, message] of cases) {
      it(what, () => {
        const error = refusal(env);
        expect(error.message).to.match(message);
        expect(error.message).not.to.include('\n');
      });
    }

    it('never echoes a password from DATABASE_URL', () => {
      expect(refusal({ DATABASE_URL: 'postgres://user:hunter2@db/app' }).message).not.to.include('hunter2');
    });
  });
});
