// The TTS model list from a model_info.json file (TTS_MODEL_INFO_PATH), the Flask original's final
// form of GET /api/tts/models. The file is read again only when it changes (inode, size, times).
import fs from 'node:fs/promises';
import { HttpError } from './errors.js';

type Json = Record<string, unknown>;

export type TtsModels = Record<string, Json>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

// Python's truthiness, as `None if clone else ...` reads the file's value.
function truthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

// dict.get(key, default): a key present with null keeps its null.
const get = (info: Json, key: string, fallback: unknown) => (Object.hasOwn(info, key) ? info[key] : fallback);

/** One model as the original answered it, defaults included. */
function describeModel(info: Json): Json {
  const clone = get(info, 'clone', false);
  return {
    clone,
    cur_timbre: truthy(clone) ? null : get(info, 'cur_timbre', null),
    full_name: get(info, 'full_name', ''),
    license: get(info, 'license', 'unknown'),
    status: get(info, 'status', 'unknown'),
    timbres: truthy(clone) ? null : get(info, 'timbres', []),
  };
}

const readingFailed = (text: string) => new HttpError(500, { error: text, msg: 'Error reading TTS models' });

function parseModels(text: string): TtsModels {
  let info: unknown;
  try {
    info = JSON.parse(text);
  } catch (error) {
    throw readingFailed((error as Error).message);
  }
  if (!isObject(info)) throw readingFailed('the model information is not a JSON object');
  // fromEntries defines each key, so a model named "__proto__" stays a model, as in Python.
  return Object.fromEntries(Object.entries(info).map(([name, model]) => {
    if (!isObject(model)) throw readingFailed(`model "${name}" is not a JSON object`);
    return [name, describeModel(model)];
  }));
}

// Node's messages name the file ("EACCES: permission denied, open '/srv/...'"): the path stays out.
const withoutPath = (error: NodeJS.ErrnoException) => error.message.split(',')[0];

/** Returns a reader of the model list: 404 when the file is missing, 500 when it cannot be used. */
export function ttsModelFile(path: string): () => Promise<TtsModels> {
  let cached: { version: string; models?: TtsModels; error?: HttpError } | undefined;
  return async function readTtsModels(): Promise<TtsModels> {
    let version: string;
    try {
      const stats = await fs.stat(path);
      version = `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new HttpError(404, { msg: 'Model information file not found' });
      throw readingFailed(withoutPath(error as NodeJS.ErrnoException));
    }
    if (cached?.version !== version) {
      try {
        cached = { version, models: parseModels(await fs.readFile(path, 'utf8')) };
      } catch (error) {
        cached = { version, error: error instanceof HttpError ? error : readingFailed(withoutPath(error as NodeJS.ErrnoException)) };
      }
    }
    if (cached.error) throw cached.error;
    return cached.models!;
  };
}
