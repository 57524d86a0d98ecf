// The Flask original's routes/avatar.py blueprint (api.md): one async handler per view, in its
// order. Each calls the avatar or TTS service through the one HTTP client (deps.httpClient); the
// failures of a call are mapped by the error handler with the messages its route names.
import type { Readable } from 'node:stream';
import { Router, type Request, type Response } from 'express';
import type { AppDeps } from '../app.js';
import type { Config } from '../config.js';
import { upstreamFailures } from '../middleware/errorHandler.js';
import { onlyMethods } from '../middleware/methods.js';
import { checkAvatarName } from '../services/avatarName.js';
import { relayUpload } from '../services/avatarUpload.js';
import { sendJson } from '../services/flaskJson.js';
import { FORM_MAX_PARTS, readForm, requiredField } from '../services/forms.js';
import { parseJson, readText, toUpstreamError, type UpstreamResponse } from '../services/httpClient.js';
import { ttsModelFile } from '../services/ttsModels.js';

/** What add forwards, in the order the original sent it; anything else (ref_text...) is dropped. */
const ADD_FIELDS = ['name', 'avatar_blur', 'support_clone', 'timbre', 'tts_model', 'avatar_model', 'description'];
const ADD_FILES = ['prompt_face', 'prompt_voice'];
const FORWARDING_FAILED = 'Error forwarding to avatar service';

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

function tryParseJson(text: string): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

/** Pass-through JSON keeps the upstream's bytes (api.md, "JSON bodies"). */
function sendUpstreamJson(res: Response, status: number, text: string): void {
  res.status(status).setHeader('Content-Type', 'application/json');
  res.send(Buffer.from(text));
}

// The original failed with 500 on shapes it could not handle; the gateway says so in its error log.
function unexpectedAnswer(what: string): Error {
  return new Error(`avatar service answered ${what}`);
}

/** The older list form gets placeholders; the newer object form keeps each config (difference 3). */
function avatarList(avatars: unknown): Json {
  if (avatars === undefined) return {};
  if (Array.isArray(avatars)) {
    return Object.fromEntries(avatars.map(String).map((name) => [name, {
      avatar_model: '', clone: false, description: `Avatar: ${name}`, status: 'active', timbre: '', tts_model: '',
    }]));
  }
  if (!isObject(avatars)) throw unexpectedAnswer(`"avatars" that is neither a list nor an object (${JSON.stringify(avatars)})`);
  return Object.fromEntries(Object.entries(avatars).map(([name, config]) => {
    if (!isObject(config)) throw unexpectedAnswer(`a config for "${name}" that is not an object`);
    return [name, { ...config, clone: 'support_clone' in config ? config.support_clone : false }];
  }));
}

/** Add, delete and start answer alike: success passed through, other JSON objects in `detail`. */
function sendActionAnswer(res: Response, response: UpstreamResponse, failed: string, invalidJson: string): void {
  const data = tryParseJson(response.text);
  if (!data) return sendJson(res, 500, { msg: invalidJson, raw: response.text });
  if (!isObject(data.value)) throw unexpectedAnswer('JSON that is not an object');
  if (data.value.status === 'success') return sendUpstreamJson(res, 200, response.text);
  sendJson(res, 400, { detail: data.value, msg: failed });
}

/** Streams an upstream body to the client; resolves when the response is done or the client gone. */
function relayBody(body: Readable, res: Response): Promise<void> {
  return new Promise((resolve, reject) => {
    body.once('error', (error) => {
      body.unpipe(res);
      reject(toUpstreamError('avatar', error));
    });
    res.once('close', resolve);
    body.pipe(res);
  });
}

// Three significant digits: "15 minutes" by default, "3.33" for the original's 200 s, and a short
// test timeout still reads as what it is ("0.00417" for 250 ms, never "0").
const minutes = (ms: number) => String(Number((ms / 60_000).toPrecision(3)));

export function avatarRoutes(config: Config, deps: AppDeps): Router {
  const router = Router({ strict: true, caseSensitive: true });
  const { auth, httpClient } = deps;
  const { timeouts, limits } = config;
  const managersOnly = auth.requireRole(...config.avatarManagerRoles);
  const readTtsModelFile = config.ttsModelInfoPath ? ttsModelFile(config.ttsModelInfoPath) : undefined;

  /** A form route's call: one urlencoded field, never retried (POST). */
  const postForm = (req: Request, path: string, form: Record<string, string>, timeoutMs: number) =>
    httpClient.request('avatar', { method: 'POST', path, form, timeoutMs, requestId: req.id, signal: req.signal });

  async function getAvatarList(req: Request, res: Response): Promise<void> {
    const response = await httpClient.request('avatar', {
      path: '/avatar/get_avatars', timeoutMs: timeouts.upstreamMs, requestId: req.id, signal: req.signal,
    });
    const data = parseJson('avatar', response);
    if (!isObject(data)) throw unexpectedAnswer('a JSON body that is not an object');
    if (data.status !== 'success') return sendUpstreamJson(res, response.status, response.text);
    sendJson(res, 200, avatarList(data.avatars));
  }

  async function getAvatarPreview(req: Request, res: Response): Promise<void> {
    const form = await readForm(req, limits.maxFormBytes, config.server.bodyIdleTimeoutMs);
    const avatarName = requiredField(form, 'avatar_name', 'Missing avatar_name in form-data');
    checkAvatarName(avatarName);
    const upstream = await httpClient.stream('avatar', {
      method: 'POST', path: '/avatar/preview', form: { avatar_name: avatarName },
      timeoutMs: timeouts.upstreamMs, requestId: req.id, signal: req.signal,
    });
    if (upstream.status !== 200) {
      const { text } = await readText('avatar', upstream, config.pool.maxJsonBytes).catch((error: unknown) => {
        throw toUpstreamError('avatar', error);
      });
      return sendJson(res, upstream.status, { detail: text, msg: 'Failed to get avatar preview' });
    }
    res.status(200).setHeader('Content-Type', upstream.headers['content-type'] ?? 'image/png');
    if (upstream.headers['content-length']) res.setHeader('Content-Length', upstream.headers['content-length']);
    // Headers leave with the first byte: a body that stalls before it still answers 504.
    await relayBody(upstream.body, res);
  }

  async function addAvatar(req: Request, res: Response): Promise<void> {
    const response = await relayUpload(req, {
      fields: ADD_FIELDS,
      files: ADD_FILES,
      limits: { maxBytes: limits.maxUploadBytes, maxFieldBytes: limits.maxFormBytes, maxParts: FORM_MAX_PARTS, idleMs: config.server.bodyIdleTimeoutMs },
      checkField: (name, value) => {
        if (name === 'name') checkAvatarName(value);
      },
      send: (body, signal) => httpClient.request('avatar', {
        method: 'POST', path: '/avatar/add', timeoutMs: timeouts.avatarAddMs, requestId: req.id, signal,
        ...('form' in body ? { form: body.form } : { body: body.stream, headers: { 'content-type': body.contentType } }),
      }),
    });
    sendActionAnswer(res, response, 'Avatar creation failed', 'Invalid JSON response from avatar service');
  }

  async function getTtsModels(req: Request, res: Response): Promise<void> {
    if (readTtsModelFile) return sendJson(res, 200, await readTtsModelFile());
    const response = await httpClient.request('tts', {
      path: '/tts/models', timeoutMs: timeouts.upstreamMs, requestId: req.id, signal: req.signal,
    });
    if (response.status !== 200) return sendJson(res, response.status, { detail: response.text, msg: 'Failed to fetch TTS models' });
    parseJson('tts', response); // a 200 that is not JSON is a failure of the TTS service
    sendUpstreamJson(res, 200, response.text);
  }

  async function deleteAvatar(req: Request, res: Response): Promise<void> {
    const form = await readForm(req, limits.maxFormBytes, config.server.bodyIdleTimeoutMs);
    const name = requiredField(form, 'name', "Missing 'name' in form-data");
    checkAvatarName(name);
    const response = await postForm(req, '/avatar/delete', { name }, timeouts.upstreamMs);
    sendActionAnswer(res, response, 'Avatar deletion failed', 'Invalid JSON response');
  }

  async function startAvatar(req: Request, res: Response): Promise<void> {
    const form = await readForm(req, limits.maxFormBytes, config.server.bodyIdleTimeoutMs);
    const avatarName = requiredField(form, 'avatar_name', "Missing 'avatar_name' in form-data");
    checkAvatarName(avatarName);
    const response = await postForm(req, '/avatar/start', { avatar_name: avatarName }, timeouts.avatarStartMs);
    sendActionAnswer(res, response, 'Avatar start failed', 'Invalid JSON response from avatar service');
  }

  const avatarService = upstreamFailures({ connect: FORWARDING_FAILED });

  router.route('/avatar/list')
    .get(auth.jwtRequired, upstreamFailures({ connect: 'Failed to connect to avatar service' }), getAvatarList)
    .all(onlyMethods('GET'));
  router.route('/avatar/preview')
    .post(auth.jwtRequired, avatarService, getAvatarPreview)
    .all(onlyMethods('POST'));
  // The role is checked before a byte of the upload is read.
  router.route('/avatar/add')
    .post(auth.jwtRequired, managersOnly, upstreamFailures({
      connect: FORWARDING_FAILED,
      timeout: `Avatar creation timeout (exceeded ${minutes(timeouts.avatarAddMs)} minutes)`,
    }), addAvatar)
    .all(onlyMethods('POST'));
  router.route('/tts/models')
    .get(auth.jwtRequired, upstreamFailures({ connect: 'Error connecting to TTS service', timeout: 'TTS service timeout' }), getTtsModels)
    .all(onlyMethods('GET'));
  router.route('/avatar/delete')
    .post(auth.jwtRequired, managersOnly, avatarService, deleteAvatar)
    .all(onlyMethods('POST'));
  router.route('/avatar/start')
    .post(auth.jwtRequired, avatarService, startAvatar)
    .all(onlyMethods('POST'));

  return router;
}
