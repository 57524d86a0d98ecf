// Reads a request a simulated upstream received and describes it for tests (sim/types.ts,
// RecordedRequest). The body is streamed through a hash, so a gigabyte upload costs no memory;
// only small bodies are kept as bytes, and multipart files are hashed part by part.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import type { RecordedFile, RecordedRequest } from './types.js';

/** Bodies up to this size are kept whole in the record (signalling offers, small forms). */
export const KEPT_BODY_BYTES = 1024 * 1024;

function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

// Fields and files of a multipart body, read as it streams by; a malformed body keeps what was read.
function readMultipart(req: IncomingMessage): Promise<{ fields: Array<[string, string]>; files: RecordedFile[] }> {
  const fields: Array<[string, string]> = [];
  const files: RecordedFile[] = [];
  return new Promise((resolve) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: req.headers, defParamCharset: 'utf8' });
    } catch {
      resolve({ fields, files });
      return;
    }
    parser.on('field', (name, value) => fields.push([name, value]));
    parser.on('file', (field, stream, info) => {
      const hash = createHash('sha256');
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        hash.update(chunk);
      });
      stream.on('end', () => files.push({ field, filename: info.filename ?? '', contentType: info.mimeType, size, sha256: hash.digest('hex') }));
      // A truncated body errors the part and the parser alike; the parser's error is the one handled.
      stream.on('error', () => {});
    });
    parser.on('close', () => resolve({ fields, files }));
    parser.on('error', () => {
      req.unpipe(parser);
      // pipe() may have paused the body for the failed parser: the rest is still read and hashed.
      req.resume();
      resolve({ fields, files });
    });
    req.pipe(parser);
  });
}

/** Resolves once the whole body has arrived; rejects if the client goes away first. */
export async function recordRequest(req: IncomingMessage): Promise<RecordedRequest> {
  const encoding = mediaType(req);
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  let bodySize = 0;
  const multipart = encoding === 'multipart/form-data' ? readMultipart(req) : undefined;
  await new Promise<void>((resolve, reject) => {
    req.on('data', (chunk: Buffer) => {
      bodySize += chunk.length;
      hash.update(chunk);
      if (bodySize <= KEPT_BODY_BYTES) kept.push(chunk);
    });
    req.once('end', resolve);
    req.once('error', reject);
    req.once('close', () => { if (!req.complete) reject(new Error('client went away mid-body')); });
  });
  const body = bodySize <= KEPT_BODY_BYTES ? Buffer.concat(kept) : undefined;

  const record: RecordedRequest = {
    method: req.method ?? '',
    url: req.url ?? '',
    headers: { ...req.headers },
    encoding: bodySize > 0 || req.headers['content-type'] ? encoding : '',
    files: [],
    bodySize,
    bodySha256: hash.digest('hex'),
    body,
  };
  if (multipart) {
    const { fields, files } = await multipart;
    record.fields = fields;
    record.files = files;
  } else if (encoding === 'application/x-www-form-urlencoded' && body) {
    record.fields = [...new URLSearchParams(body.toString('utf8'))];
  } else if (encoding === 'application/json' && body) {
    try {
      record.json = JSON.parse(body.toString('utf8'));
    } catch {
      // Left undefined: the service under simulation answers invalid JSON its own way.
    }
  }
  return record;
}
