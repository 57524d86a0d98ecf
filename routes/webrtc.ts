// Placeholder until issue 4 lands the WebRTC proxy.
import { Router } from 'express';
import type { AppDeps } from '../app.js';
import type { Config } from '../config.js';

export function webrtcRoutes(_config: Config, _deps: AppDeps): Router {
  return Router();
}
