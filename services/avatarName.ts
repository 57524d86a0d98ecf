// The avatar-name check of api.md's "Deliberate differences" (4): the avatar service turns a name
// into a directory (data/avatars/<name>) and deletes directories by name, without checking it.
import { HttpError } from './errors.js';

const MAX_NAME_CHARACTERS = 128;
// C0 controls (NUL included), DEL and the C1 controls: Unicode's Cc category.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

export function isSafeAvatarName(name: string): boolean {
  return !name.includes('/')
    && !name.includes('\\')
    && !CONTROL_CHARACTER.test(name)
    && name !== '.'
    && name !== '..'
    // Counted in code points, as Python's len() counts them.
    && [...name].length <= MAX_NAME_CHARACTERS;
}

/** Refuses a dangerous name before anything is forwarded; an empty one keeps the original's answers. */
export function checkAvatarName(name: string): void {
  if (name !== '' && !isSafeAvatarName(name)) throw new HttpError(400, { msg: 'Invalid avatar name' });
}
