// docs/openapi.yaml is a valid OpenAPI 3.1 document, and what the running gateway really answers
// matches what it declares: status, media type, required headers and the body's JSON Schema.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { validate, compileErrors } from '@readme/openapi-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import jwt from 'jsonwebtoken';
import YAML from 'yaml';
import { startTestGateway, TEST_SECRET, type TestGateway } from './helpers/gateway.js';

const DOC_URL = new URL('../docs/openapi.yaml', import.meta.url);
const DOC_ID = 'https://avatar-gateway.local/openapi.yaml';
const METRICS_TOKEN = 'metrics-token-for-the-openapi-test';

type Json = Record<string, any>;

function loadDoc(): Json {
  return YAML.parse(fs.readFileSync(DOC_URL, 'utf8'));
}

const pointerSegment = (key: string) => encodeURIComponent(key.replace(/~/g, '~0').replace(/\//g, '~1'));

/** Checks real responses against the document, schemas compiled by ajv (JSON Schema 2020-12, as OpenAPI 3.1). */
class ResponseChecker {
  private readonly ajv = new Ajv2020({ allErrors: true });

  constructor(private readonly doc: Json) {
    // The document's own top-level fields are not JSON Schema keywords; its schemas are.
    this.ajv.addVocabulary(['openapi', 'info', 'servers', 'security', 'tags', 'paths', 'components']);
    this.ajv.addSchema(doc, DOC_ID);
  }

  /** The pointer of a path's operation response for a status (exact, then 4XX-style, then default). */
  operationResponse(method: string, template: string, status: number): string {
    const operation = this.doc.paths?.[template]?.[method.toLowerCase()];
    if (!operation) throw new Error(`openapi.yaml has no ${method} ${template}`);
    const key = [String(status), `${String(status)[0]}XX`, 'default'].find((k) => operation.responses[k]);
    if (!key) throw new Error(`openapi.yaml declares no ${status} (nor default) for ${method} ${template}`);
    return `/paths/${pointerSegment(template)}/${method.toLowerCase()}/responses/${key}`;
  }

  /** Follows the response object's own $ref (OpenAPI refs, not schema refs) to the pointer that holds it. */
  private resolve(pointer: string): { pointer: string; response: Json } {
    const value = pointer.split('/').slice(1)
      .reduce((node: Json, segment) => node[decodeURIComponent(segment).replace(/~1/g, '/').replace(/~0/g, '~')], this.doc);
    if (typeof value?.$ref === 'string') return this.resolve(value.$ref.slice(1));
    return { pointer, response: value };
  }

  /** Returns the problems found (empty when the response matches). */
  async check(responsePointer: string, res: Response): Promise<string[]> {
    const { pointer, response } = this.resolve(responsePointer);
    const problems: string[] = [];
    for (const [name, header] of Object.entries<Json>(response.headers ?? {})) {
      if (header.required && !res.headers.has(name)) problems.push(`missing header ${name}`);
    }
    const contentType = res.headers.get('content-type') ?? '';
    const essence = contentType.split(';')[0].trim();
    const body = await res.text();
    if (!response.content) return body === '' ? problems : [...problems, `body not declared: ${body.slice(0, 80)}`];
    const mediaType = [essence, essence.replace(/\/.*/, '/*'), '*/*'].find((m) => response.content[m]);
    if (!mediaType) return [...problems, `content type ${contentType} not declared at ${pointer}`];
    if (!response.content[mediaType].schema) return problems;
    const validateBody = this.ajv.getSchema(`${DOC_ID}#${pointer}/content/${pointerSegment(mediaType)}/schema`)!;
    const value = essence === 'application/json' ? JSON.parse(body) : body;
    if (!validateBody(value)) problems.push(`${this.ajv.errorsText(validateBody.errors)} in ${body.slice(0, 200)}`);
    return problems;
  }

  /** Problems of a value against a named schema of components.schemas. */
  checkSchema(name: string, value: unknown): string[] {
    const validateValue = this.ajv.getSchema(`${DOC_ID}#/components/schemas/${name}`)!;
    return validateValue(value) ? [] : [this.ajv.errorsText(validateValue.errors)];
  }
}

/**
 * A stand-in for the avatar service answering like its FastAPI original (upstreams.md). The gateway
 * forwards a sane X-Request-ID: `service-<status>` makes the stand-in answer that status itself,
 * with FastAPI's JSON error body, on the list, the preview and the TTS models (it can stand in for
 * the TTS service too).
 */
async function startAvatarService(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const own = /^service-(\d{3})$/.exec(String(req.headers['x-request-id']));
      if (own && ['/avatar/get_avatars', '/avatar/preview', '/tts/models'].includes(req.url ?? '')) {
        res.writeHead(Number(own[1]), { 'content-type': 'application/json' });
        res.end('{"detail":"GPU busy, try again later"}');
      } else if (req.method === 'GET' && req.url === '/avatar/get_avatars') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: 'success', avatars: ['bob_math', 'Zoe', 'avatar_1'] }));
      } else if (req.method === 'POST' && req.url === '/avatar/preview') {
        res.writeHead(200, { 'content-type': 'image/png' });
        res.end(Buffer.from('89504e470d0a1a0a', 'hex'));
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"detail":"Not Found"}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A token shaped like the Flask backend's create_access_token (auth.md). */
function flaskToken(role: string): string {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign(
    { fresh: false, iat: now, jti: '6f1c1a52-5c4e-4f37-9a2b-3c1d2e4f5a6b', type: 'access', sub: `${role}@example.com`, nbf: now, exp: now + 18000, role },
    TEST_SECRET,
    { algorithm: 'HS256', noTimestamp: true },
  );
}

describe('docs/openapi.yaml', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const doc = loadDoc();
    expect(doc.openapi).to.match(/^3\.1\./);
    const result = await validate(fileURLToPath(DOC_URL));
    expect(result.valid, result.valid ? '' : compileErrors(result)).to.equal(true);
  });

  describe('the running gateway answers as the document declares', () => {
    let gw: TestGateway;
    let avatarService: Awaited<ReturnType<typeof startAvatarService>>;
    let checker: ResponseChecker;

    before(async () => {
      checker = new ResponseChecker(loadDoc());
      avatarService = await startAvatarService();
      // The TTS and WebRTC services stay unreachable; the breaker must not open during these samples.
      gw = await startTestGateway({ AVATAR_SERVICE_URL: avatarService.url, UPSTREAM_TIMEOUT_MS: '2000', BREAKER_FAILURE_THRESHOLD: '100', METRICS_TOKEN });
    });
    after(async () => {
      await gw.close();
      await avatarService.close();
    });

    const form = (fields: Record<string, string>) => ({
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });

    /** The avatar service answers `status` itself (see startAvatarService). */
    const serviceAnswers = (status: number) => ({ 'x-request-id': `service-${status}` });

    const samples: Array<{ name: string; method: string; url: string; init?: RequestInit; status: number; declared: string | [string, string] }> = [
      { name: 'health', method: 'GET', url: '/api/health', status: 200, declared: ['GET', '/api/health'] },
      { name: 'ping', method: 'GET', url: '/api/ping', status: 200, declared: ['GET', '/api/ping'] },
      { name: 'detailed health with the TTS and WebRTC services down', method: 'GET', url: '/api/health/detailed', status: 503, declared: ['GET', '/api/health/detailed'] },
      { name: 'unknown path', method: 'GET', url: '/api/avatar/List', status: 404, declared: '/components/responses/NotFound' },
      { name: 'wrong method', method: 'POST', url: '/api/ping', status: 405, declared: '/components/responses/MethodNotAllowed' },
      { name: 'list without a token', method: 'GET', url: '/api/avatar/list', status: 401, declared: ['GET', '/api/avatar/list'] },
      {
        name: 'list with a malformed token', method: 'GET', url: '/api/avatar/list', status: 422, declared: ['GET', '/api/avatar/list'],
        init: { headers: { authorization: 'Bearer not-a-jwt' } },
      },
      {
        name: 'list with a token', method: 'GET', url: '/api/avatar/list?timeout=30000', status: 200, declared: ['GET', '/api/avatar/list'],
        init: { headers: { authorization: `Bearer ${flaskToken('student')}` } },
      },
      {
        name: 'preview without avatar_name', method: 'POST', url: '/api/avatar/preview', status: 400, declared: ['POST', '/api/avatar/preview'],
        init: { ...form({ other: 'x' }), headers: { ...form({}).headers, authorization: `Bearer ${flaskToken('student')}` } },
      },
      {
        name: 'preview image', method: 'POST', url: '/api/avatar/preview', status: 200, declared: ['POST', '/api/avatar/preview'],
        init: { ...form({ avatar_name: 'Zoe' }), headers: { ...form({}).headers, authorization: `Bearer ${flaskToken('student')}` } },
      },
      {
        name: 'list answered 503 by the avatar service itself: its JSON passed on', method: 'GET', url: '/api/avatar/list', status: 503,
        declared: ['GET', '/api/avatar/list'], init: { headers: { authorization: `Bearer ${flaskToken('student')}`, ...serviceAnswers(503) } },
      },
      {
        name: 'list answered 500 by the avatar service itself: its JSON passed on', method: 'GET', url: '/api/avatar/list', status: 500,
        declared: ['GET', '/api/avatar/list'], init: { headers: { authorization: `Bearer ${flaskToken('student')}`, ...serviceAnswers(500) } },
      },
      ...[500, 503, 504].map((status) => ({
        name: `preview answered ${status} by the avatar service itself: the route's detail and msg`, method: 'POST', url: '/api/avatar/preview', status,
        declared: ['POST', '/api/avatar/preview'] as [string, string],
        init: { ...form({ avatar_name: 'Zoe' }), headers: { ...form({}).headers, authorization: `Bearer ${flaskToken('student')}`, ...serviceAnswers(status) } },
      })),
      {
        name: 'delete as a student', method: 'POST', url: '/api/avatar/delete', status: 403, declared: ['POST', '/api/avatar/delete'],
        init: { ...form({ name: 'Zoe' }), headers: { ...form({}).headers, authorization: `Bearer ${flaskToken('student')}` } },
      },
      {
        name: 'TTS models with the TTS service unreachable', method: 'GET', url: '/api/tts/models', status: 500, declared: ['GET', '/api/tts/models'],
        init: { headers: { authorization: `Bearer ${flaskToken('student')}` } },
      },
      { name: 'metrics without METRICS_TOKEN', method: 'GET', url: '/metrics', status: 401, declared: ['GET', '/metrics'] },
      {
        name: 'metrics with METRICS_TOKEN', method: 'GET', url: '/metrics', status: 200, declared: ['GET', '/metrics'],
        init: { headers: { authorization: `Bearer ${METRICS_TOKEN}` } },
      },
    ];

    for (const sample of samples) {
      it(`${sample.name}: ${sample.method} ${sample.url} -> ${sample.status}`, async () => {
        const res = await fetch(gw.url + sample.url, { method: sample.method, ...sample.init });
        expect(res.status).to.equal(sample.status);
        const pointer = typeof sample.declared === 'string'
          ? sample.declared
          : checker.operationResponse(sample.declared[0], sample.declared[1], res.status);
        expect(await checker.check(pointer, res)).to.deep.equal([]);
      });
    }

    it('the list is the avatar map of the document (not only "some upstream JSON")', async () => {
      const res = await fetch(`${gw.url}/api/avatar/list`, { headers: { authorization: `Bearer ${flaskToken('tutor')}` } });
      expect(res.status).to.equal(200);
      const body = await res.json();
      expect(Object.keys(body)).to.deep.equal(['Zoe', 'avatar_1', 'bob_math']);
      expect(checker.checkSchema('AvatarMap', body)).to.deep.equal([]);
    });

    it('an upstream whose circuit is open: 503 busy with Retry-After, as declared', async () => {
      const tripped = await startTestGateway({ BREAKER_FAILURE_THRESHOLD: '1', BREAKER_COOLDOWN_MS: '60000' });
      try {
        const call = () => fetch(`${tripped.url}/api/tts/models`, { headers: { authorization: `Bearer ${flaskToken('student')}` } });
        // The first connection failure (the start-up probe or this call) opens the circuit.
        let res = await call();
        if (res.status === 500) res = await call();
        expect(res.status).to.equal(503);
        expect(res.headers.get('retry-after')).to.match(/^\d+$/);
        expect(await checker.check(checker.operationResponse('GET', '/api/tts/models', 503), res)).to.deep.equal([]);
      } finally {
        await tripped.close();
      }
    });

    it('TTS models answered 404, 500, 503 and 504 by the TTS service itself: the route\'s detail and msg, as declared', async () => {
      const withService = await startTestGateway({ AVATAR_SERVICE_URL: avatarService.url, TTS_SERVICE_URL: avatarService.url });
      try {
        for (const status of [404, 500, 503, 504]) {
          const res = await fetch(`${withService.url}/api/tts/models`, { headers: { authorization: `Bearer ${flaskToken('student')}`, ...serviceAnswers(status) } });
          expect(res.status).to.equal(status);
          expect(await checker.check(checker.operationResponse('GET', '/api/tts/models', status), res), String(status)).to.deep.equal([]);
        }
      } finally {
        await withService.close();
      }
    });

    it('TTS models from TTS_MODEL_INFO_PATH: a model file\'s clone passes through as whatever JSON it is, as declared', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openapi-tts-'));
      const file = path.join(dir, 'model_info.json');
      fs.writeFileSync(file, JSON.stringify({
        edge: { full_name: 'Edge TTS', clone: false, timbres: ['a'], cur_timbre: 'a' },
        cosy: { full_name: 'CosyVoice2', clone: 'zero-shot' },
        fish: { clone: { languages: ['zh'] } },
        none: { clone: null },
      }));
      const fromFile = await startTestGateway({ TTS_MODEL_INFO_PATH: file });
      try {
        const res = await fetch(`${fromFile.url}/api/tts/models`, { headers: { authorization: `Bearer ${flaskToken('student')}` } });
        expect(res.status).to.equal(200);
        const body = await res.clone().json();
        expect([body.cosy.clone, body.fish.clone, body.none.clone]).to.deep.equal(['zero-shot', { languages: ['zh'] }, null]);
        expect(await checker.check(checker.operationResponse('GET', '/api/tts/models', 200), res)).to.deep.equal([]);
      } finally {
        await fromFile.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('the checker refuses a body the document does not allow', async () => {
      const forged = new Response('{"msg":"Resource not found","stack":"at x"}\n', {
        status: 404,
        headers: { 'content-type': 'application/json' },
      });
      const problems = await checker.check('/components/responses/NotFound', forged);
      expect(problems.join('\n')).to.include('must NOT have additional properties');
    });
  });
});
