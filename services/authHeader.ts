// The Authorization header read exactly as Flask-JWT-Extended 4.7 reads it (auth.md, "Reading the
// header"): strip whitespace then commas, split on ",\s*", keep the one element whose first word
// is the case-sensitive `Bearer`, which must be `Bearer <token>`. Python's notion of whitespace
// (str.split, str.strip, re's \s) is used throughout, so odd spacing is judged the same way.
import { TokenRefused } from './tokenRefusal.js';

const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const EDGE_SPACE = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');
const EDGE_COMMAS = /^,+|,+$/g;
const ELEMENT_SEPARATOR = new RegExp(`,[${PY_SPACE}]*`);
const SPACE_RUN = new RegExp(`[${PY_SPACE}]+`);

/** Python's str.split() without arguments: words between runs of whitespace. */
function words(text: string): string[] {
  return text.split(SPACE_RUN).filter((word) => word !== '');
}

/** The token from an Authorization header value, or the refusal Flask-JWT-Extended answers. */
export function readBearerToken(header: string | undefined): string {
  const value = (header ?? '').replace(EDGE_SPACE, '').replace(EDGE_COMMAS, '');
  if (value === '') throw new TokenRefused('missing_header');

  const elements = value.split(ELEMENT_SEPARATOR).map(words);
  // The original crashed (500) on an empty element such as "Basic a, , Bearer x"; api.md's
  // deliberate difference 7 answers it as a bad header instead.
  if (elements.some((element) => element.length === 0)) throw new TokenRefused('bad_header');

  const bearer = elements.filter((element) => element[0] === 'Bearer');
  if (bearer.length !== 1) throw new TokenRefused('missing_bearer');
  if (bearer[0].length !== 2) throw new TokenRefused('bad_header');
  return bearer[0][1];
}
