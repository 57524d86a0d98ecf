// A simulated avatar service (upstreams.md, "Avatar service": FastAPI under uvicorn): its routes
// with their real answers (FastAPI 422 bodies, HTTPException details, status:"error" payloads), a
// list of avatars that add and delete change, and the failure modes of sim/simServer.ts plus the
// list shapes api.md's table needs.
import { previewImage } from './previewImage.js';
import {
  COMMON_MODES, METHOD_NOT_ALLOWED, NOT_FOUND, formValue, jsonAnswer, missingFields, startSimServer,
  type SimAnswer, type SimServer,
} from './simServer.js';
import { TTS_MODELS } from './ttsService.js';
import type { RecordedRequest, SimulatedServiceOptions } from './types.js';

/**
 * The common modes, and for GET /avatar/get_avatars: list-object: the newer object form;
 * avatars-null and avatars-number: "avatars" that is neither a list nor an object.
 */
export const AVATAR_MODES = [...COMMON_MODES, 'list-object', 'avatars-null', 'avatars-number'] as const;
export type AvatarMode = (typeof AVATAR_MODES)[number];

export interface AvatarConfig {
  support_clone?: boolean;
  description: string;
  tts_model: string;
  timbre: string;
  avatar_model: string;
  status: string;
}

/** Listed in this (unsorted) order; Zoe has no support_clone, as avatars made by older versions. */
export const DEFAULT_AVATARS: Readonly<Record<string, AvatarConfig>> = {
  bob_math: { support_clone: true, description: 'Bob explains maths', tts_model: 'cosyvoice', timbre: '', avatar_model: 'wav2lip', status: 'active' },
  Zoe: { description: 'Zoe, English conversation', tts_model: 'edgeTTS', timbre: 'en-US-AriaNeural', avatar_model: 'musetalk', status: 'active' },
  avatar_1: { support_clone: false, description: '默认形象', tts_model: 'edgeTTS', timbre: 'zh-CN-XiaoxiaoNeural', avatar_model: 'wav2lip', status: 'active' },
};

const VIDEO_EXTENSIONS = ['.mp4', '.avi', '.mov', '.mkv'];

export interface AvatarServiceOptions extends SimulatedServiceOptions {
  /** The avatars at start (and after reset()); default DEFAULT_AVATARS. */
  avatars?: Record<string, AvatarConfig>;
  /** Side of the square preview PNG in pixels; default 256 (about 0.2 MB). */
  previewSide?: number;
  slowGapMs?: number;
}

export interface SimulatedAvatarService extends SimServer<AvatarMode> {
  /** The avatars the service has now, in its listing order. */
  readonly avatars: Map<string, AvatarConfig>;
  /** The PNG /avatar/preview answers for this name. */
  previewImage(name: string): Buffer;
  /** Back to the starting avatars, mode normal, no latency, no recorded requests. */
  reset(): void;
}

export async function startAvatarService(options: AvatarServiceOptions = {}): Promise<SimulatedAvatarService> {
  const initial = options.avatars ?? DEFAULT_AVATARS;
  const avatars = new Map(Object.entries(structuredClone(initial)));
  const previews = new Map<string, Buffer>();
  const preview = (name: string) => {
    if (!previews.has(name)) previews.set(name, previewImage(name, options.previewSide));
    return previews.get(name)!;
  };

  function listAvatars(mode: AvatarMode): SimAnswer {
    if (mode === 'list-object') return jsonAnswer({ status: 'success', avatars: Object.fromEntries(avatars) });
    if (mode === 'avatars-null') return jsonAnswer({ status: 'success', avatars: null });
    if (mode === 'avatars-number') return jsonAnswer({ status: 'success', avatars: avatars.size });
    return jsonAnswer({ status: 'success', avatars: [...avatars.keys()] });
  }

  function showPreview(record: RecordedRequest): SimAnswer {
    const name = formValue(record, 'avatar_name');
    if (name === undefined) return missingFields(['avatar_name']);
    if (!avatars.has(name)) return jsonAnswer({ detail: `Avatar preview image not found for ${name}` }, 404);
    return { status: 200, contentType: 'image/png', body: preview(name) };
  }

  function addAvatar(record: RecordedRequest): SimAnswer {
    const name = formValue(record, 'name');
    const video = record.files.find((file) => file.field === 'prompt_face');
    const missing = [...(name === undefined ? ['name'] : []), ...(video ? [] : ['prompt_face'])];
    if (missing.length > 0) return missingFields(missing);
    if (video!.size === 0) return jsonAnswer({ detail: 'The uploaded video is empty' }, 400);
    const extension = video!.filename.slice(video!.filename.lastIndexOf('.')).toLowerCase();
    if (!VIDEO_EXTENSIONS.includes(extension)) {
      return jsonAnswer({ detail: `Unsupported video format '${extension}', use one of ${VIDEO_EXTENSIONS.join(', ')}` }, 400);
    }
    if (avatars.has(name!)) return jsonAnswer({ detail: `Avatar '${name}' already exists` }, 400);
    avatars.set(name!, {
      support_clone: formValue(record, 'support_clone') === 'true',
      description: formValue(record, 'description') ?? '',
      tts_model: formValue(record, 'tts_model') ?? '',
      timbre: formValue(record, 'timbre') ?? '',
      avatar_model: formValue(record, 'avatar_model') ?? '',
      status: 'active',
    });
    return jsonAnswer({ status: 'success', message: 'Avatar created', image_path: `data/avatars/${name}/full_imgs/00000000.png` });
  }

  function deleteAvatar(record: RecordedRequest): SimAnswer {
    const name = formValue(record, 'name');
    if (name === undefined) return missingFields(['name']);
    if (!avatars.delete(name)) return jsonAnswer({ detail: `Avatar '${name}' does not exist, cannot delete` }, 404);
    return jsonAnswer({ status: 'success', message: `Avatar '${name}' has been successfully deleted` });
  }

  function startAvatar(record: RecordedRequest): SimAnswer {
    const name = formValue(record, 'avatar_name');
    if (name === undefined) return missingFields(['avatar_name']);
    if (!avatars.has(name)) return jsonAnswer({ status: 'error', message: `Avatar ${name} does not exist` });
    return jsonAnswer({ status: 'success', message: `Successfully switched to avatar ${name}, service started on port 8615` });
  }

  const routes: Record<string, [method: string, answer: (record: RecordedRequest, mode: AvatarMode) => SimAnswer]> = {
    '/avatar/get_avatars': ['GET', (_record, mode) => listAvatars(mode)],
    '/avatar/preview': ['POST', showPreview],
    '/avatar/add': ['POST', addAvatar],
    '/avatar/delete': ['POST', deleteAvatar],
    '/avatar/start': ['POST', startAvatar],
    '/tts/models': ['GET', () => jsonAnswer(TTS_MODELS)],
  };

  const server = await startSimServer<AvatarMode>({
    ...options,
    modes: AVATAR_MODES,
    route(record, mode) {
      const route = routes[record.url.split('?')[0]];
      if (!route) return NOT_FOUND();
      const [method, answer] = route;
      const allowed = record.method === method || (method === 'GET' && record.method === 'HEAD');
      return allowed ? answer(record, mode) : METHOD_NOT_ALLOWED();
    },
  });

  return Object.assign(server, {
    avatars,
    previewImage: preview,
    reset() {
      avatars.clear();
      for (const [name, config] of Object.entries(structuredClone(initial))) avatars.set(name, config);
      server.setMode('normal');
      server.setLatency(options.latencyMs ?? 0);
      server.requests.length = 0;
    },
  });
}
