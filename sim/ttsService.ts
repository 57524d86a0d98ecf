// A simulated TTS service (upstreams.md, "TTS service"): GET /tts/models with the model list, and
// the failure modes every simulated FastAPI service has (sim/simServer.ts).
import { COMMON_MODES, METHOD_NOT_ALLOWED, NOT_FOUND, jsonAnswer, startSimServer, type CommonMode, type SimServer } from './simServer.js';
import type { SimulatedServiceOptions } from './types.js';

export const TTS_MODES = COMMON_MODES;
export type TtsMode = CommonMode;
export type SimulatedTtsService = SimServer<TtsMode>;

/** The models as the TTS service (and the avatar service) lists them: clone models have no timbres. */
export const TTS_MODELS = {
  cosyvoice: { full_name: 'CosyVoice2', clone: true, status: 'active', license: 'Apache-2.0' },
  edgeTTS: {
    full_name: 'Microsoft Edge TTS',
    clone: false,
    status: 'active',
    license: 'MIT',
    timbres: ['zh-CN-XiaoxiaoNeural', 'zh-CN-YunxiNeural', 'en-US-AriaNeural'],
    cur_timbre: 'zh-CN-XiaoxiaoNeural',
  },
  gpt_sovits: { full_name: 'GPT-SoVITS v2', clone: true, status: 'inactive', license: 'MIT' },
};

export function startTtsService(options: SimulatedServiceOptions = {}): Promise<SimulatedTtsService> {
  return startSimServer<TtsMode>({
    ...options,
    modes: TTS_MODES,
    route(record) {
      if (record.url.split('?')[0] !== '/tts/models') return NOT_FOUND();
      return record.method === 'GET' || record.method === 'HEAD' ? jsonAnswer(TTS_MODELS) : METHOD_NOT_ALLOWED();
    },
  });
}
