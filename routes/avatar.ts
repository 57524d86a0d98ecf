// Placeholder until issue 4 lands the avatar blueprint.
import { Router } from 'express';
import type { AppDeps } from '../app.js';
import type { Config } from '../config.js';

export function avatarRoutes(_config: Config, _deps: AppDeps): Router {
  return Router();
}
