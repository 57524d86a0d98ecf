// Flask's jsonify, byte for byte (api.md, "JSON bodies"): keys sorted by code point, compact
// separators, non-ASCII escaped as \uXXXX UTF-16 units like Python's ensure_ascii, trailing newline.
import type { Response } from 'express';

function byCodePoint(a: string, b: string): number {
  const left = Array.from(a);
  const right = Array.from(b);
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const diff = left[i].codePointAt(0)! - right[i].codePointAt(0)!;
    if (diff !== 0) return diff;
  }
  return left.length - right.length;
}

// JavaScript sorts by UTF-16 unit, Python by code point: they differ only when an astral character
// meets one from U+E000-U+FFFF, so the slower comparison is kept for keys that hold surrogates.
function compareKeys(a: string, b: string): number {
  if (/[\ud800-\udfff]/.test(a) || /[\ud800-\udfff]/.test(b)) return byCodePoint(a, b);
  return a < b ? -1 : a > b ? 1 : 0;
}

// Written out rather than JSON.stringify of a sorted copy: a JS object lists integer-like keys
// first ("9" before "10", where Python sorts "10" first) and would swallow a "__proto__" key.
function encode(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const toJSON = (value as { toJSON?: () => unknown }).toJSON;
  if (typeof toJSON === 'function') return encode(toJSON.call(value));
  if (Array.isArray(value)) return '[' + value.map((item) => encode(item) ?? 'null').join(',') + ']';
  const members = Object.keys(value).sort(compareKeys).flatMap((key) => {
    const member = encode((value as Record<string, unknown>)[key]);
    return member === undefined ? [] : [JSON.stringify(key) + ':' + member];
  });
  return '{' + members.join(',') + '}';
}

// Python escapes everything outside printable ASCII; JSON.stringify already did the controls.
const NOT_ASCII_PRINTABLE = /[\u007f-\uffff]/g;

export function flaskJson(value: unknown): string {
  const text = (encode(value) ?? 'null').replace(
    NOT_ASCII_PRINTABLE,
    (char) => '\\u' + char.charCodeAt(0).toString(16).padStart(4, '0'),
  );
  return text + '\n';
}

export function sendJson(res: Response, status: number, body: unknown): void {
  // setHeader, not res.set/res.type: Express would add "; charset=utf-8", which Flask does not send.
  res.status(status).setHeader('Content-Type', 'application/json');
  res.send(Buffer.from(flaskJson(body)));
}
