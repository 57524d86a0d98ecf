// Flask's request.form, read as the body arrives (api.md, "Forms"): urlencoded and multipart/form-data
// alike, first value of a repeated field wins, a JSON body or a query parameter is no form at all.
// Multipart is parsed by busboy; file parts are handed over as streams, never held whole.
import type { Request } from 'express';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { HttpError } from './errors.js';

export interface FormLimits {
  /** The whole body, declared or streamed. */
  maxBytes: number;
  /** One text field (urlencoded: one name=value pair). */
  maxFieldBytes: number;
  /** Text fields, and file parts, each. */
  maxParts: number;
  /** The longest the client may leave the body without a new chunk; the gateway's own pauses do not count. */
  idleMs: number;
}

export type FormPart =
  | { kind: 'field'; name: string; value: string }
  /** `content` must be read to its end (or resumed): the rest of the body waits for it. */
  | { kind: 'file'; name: string; filename: string; contentType: string; content: Readable };

export type FormPartHandler = (part: FormPart) => void | Promise<void>;

/** A form route's fields, parts and values beyond this are not a form the frontend sends. */
export const FORM_MAX_PARTS = 1000;
const FILE_CHUNK_BYTES = 64 * 1024;

export const bodyTooLarge = () => new HttpError(413, { msg: 'Request body too large' });
export const malformedForm = () => new HttpError(400, { msg: 'Malformed form data' });
const bodyTimeout = () => new HttpError(408, { msg: 'Request body timeout' });

/** A required form field: missing and empty answer the route's 400 alike (Flask's `if not value`). */
export function requiredField(form: ReadonlyMap<string, string>, name: string, missingMessage: string): string {
  const value = form.get(name);
  if (!value) throw new HttpError(400, { msg: missingMessage });
  return value;
}

/** Flask's request.form for the small form routes: the first value of each text field; files are skipped. */
export async function readForm(req: Request, maxBytes: number, idleMs: number): Promise<Map<string, string>> {
  const form = new Map<string, string>();
  await readFormParts(req, { maxBytes, maxFieldBytes: maxBytes, maxParts: FORM_MAX_PARTS, idleMs }, (part) => {
    if (part.kind === 'file') part.content.resume();
    else if (!form.has(part.name)) form.set(part.name, part.value);
  });
  return form;
}

/**
 * Reads the body as it arrives and hands each part to `onPart`, one at a time and in order: the next
 * part waits until the promise of the previous one settles, so a slow consumer slows the upload.
 * Rejects with 413/400/408 HttpErrors, with onPart's own error, or with `stop`'s reason when it aborts.
 */
export async function readFormParts(req: Request, limits: FormLimits, onPart: FormPartHandler, stop?: AbortSignal): Promise<void> {
  if (Number(req.headers['content-length']) > limits.maxBytes) {
    closeAfterAnswer(req);
    throw bodyTooLarge();
  }
  if (!hasBody(req)) return;

  const failed = new AbortController();
  const fail = (error: unknown) => {
    if (!failed.signal.aborted) failed.abort(error);
  };
  let queue: Promise<void> = Promise.resolve();
  const enqueue = (task: () => void | Promise<void>) => {
    queue = queue.then(() => (failed.signal.aborted ? undefined : task())).catch(fail);
  };

  let parser: Writable;
  try {
    parser = createParser(req, limits, enqueue, decodeUtf8(onPart));
  } catch {
    closeAfterAnswer(req);
    throw malformedForm();
  }
  // The client's stream is piped, not put in the pipeline: destroying it would cut the connection
  // before the 413 or 400 could be sent.
  const counter = byteLimit(limits.maxBytes);
  const clientGone = () => {
    if (!req.complete) fail(malformedForm());
  };
  req.once('close', clientGone);
  req.on('error', clientGone);
  // REQUEST_TIMEOUT_MS is 0 (uploads take minutes), so the server never cuts a body short: a client
  // silent for longer than BODY_IDLE_TIMEOUT_MS between two chunks is cut off here (408).
  const stopIdleTimer = startIdleTimer(req, limits.idleMs, () => fail(bodyTimeout()));
  req.pipe(counter);
  try {
    await pipeline(counter, parser, { signal: stop ? AbortSignal.any([failed.signal, stop]) : failed.signal });
    await queue;
  } catch (error) {
    fail(error instanceof HttpError ? error : stop?.aborted ? stop.reason : malformedForm());
  } finally {
    stopIdleTimer();
    req.unpipe(counter);
    req.off('close', clientGone);
    req.off('error', clientGone);
  }
  if (failed.signal.aborted) {
    closeAfterAnswer(req);
    throw failed.signal.reason;
  }
}

/**
 * Calls `onIdle` once the client has sent nothing for `idleMs`. Only the client's silence counts:
 * while the gateway itself has stopped reading (backpressure from a slow upstream) the timer waits.
 * Returns the function that stops it.
 */
function startIdleTimer(req: Request, idleMs: number, onIdle: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const clear = () => clearTimeout(timer);
  const restart = () => {
    clearTimeout(timer);
    if (!req.isPaused()) timer = setTimeout(onIdle, idleMs);
  };
  req.on('data', restart).on('resume', restart).on('pause', clear).once('end', clear);
  restart();
  return () => {
    clear();
    req.off('data', restart).off('resume', restart).off('pause', clear).off('end', clear);
  };
}

// Strict: bytes that are not UTF-8 throw rather than turn into U+FFFD; a BOM is kept, as Python keeps it.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Text that is no byte string: busboy decoded it in a charset its part declared (browsers never declare one). */
const decodedByBusboy = (text: string) => /[^\x00-\xff]/.test(text);

// Both parsers hand names and values over as bytes (latin1, one character per byte), decoded here.
// Bytes that are not UTF-8 are no form a browser sends, and forwarding them as U+FFFD would name
// another avatar: the form is refused (400). A U+FFFD the user typed is text like any other.
function decodeUtf8(onPart: FormPartHandler): FormPartHandler {
  return (part) => onPart(part.kind === 'field'
    ? { ...part, name: utf8Text(part.name), value: utf8Text(part.value) }
    : { ...part, name: utf8Text(part.name) });
}

function utf8Text(bytes: string): string {
  // Already decoded, as before: a U+FFFD in it may stand for bytes that were not UTF-8.
  if (decodedByBusboy(bytes)) {
    if (bytes.includes('\ufffd')) throw malformedForm();
    return bytes;
  }
  try {
    return strictUtf8.decode(Buffer.from(bytes, 'latin1'));
  } catch {
    throw malformedForm();
  }
}

// Filenames pass as before: the raw bytes of filename="..." read as UTF-8, browsers' way, bytes
// that are not UTF-8 as U+FFFD; a filename*= (RFC 5987) as busboy decoded it.
const utf8Filename = (filename: string) => (decodedByBusboy(filename) ? filename : Buffer.from(filename, 'latin1').toString('utf8'));

/** How long the rest of a refused body is read and dropped after the answer, at most. */
const LINGER_MS = 1000;

// The rest of an unread body cannot be skipped cheaply (it may be a gigabyte): the connection is
// closed after the answer. Not at once: a socket closed while the client is still sending answers
// its next bytes with a reset, and the reset can wipe out the answer before the client has read it
// (it would see "connection reset" instead of its 413 or 400). So the close lingers (RFC 9112,
// 9.6): the answer goes out, our side is shut, and the rest of the body is read and dropped until
// it ends or LINGER_MS has passed.
function closeAfterAnswer(req: Request): void {
  const { res, socket } = req;
  if (req.complete || !res || res.headersSent) return;
  res.setHeader('Connection', 'close');
  req.resume();
  res.once('finish', () => {
    // Node destroys a closing connection as soon as its answer is flushed (socket.destroySoon):
    // the lingering below takes that destroy over.
    socket.off('finish', socket.destroy);
    const close = () => socket.destroy();
    const timer = setTimeout(close, LINGER_MS).unref();
    socket.once('close', () => clearTimeout(timer));
    if (req.complete) close();
    else req.once('end', close);
  });
}

function hasBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

function mediaType(req: Request): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

type Enqueue = (task: () => void | Promise<void>) => void;

function createParser(req: Request, limits: FormLimits, enqueue: Enqueue, onPart: FormPartHandler): Writable {
  const type = mediaType(req);
  if (type === 'multipart/form-data') return multipartParser(req, limits, enqueue, onPart);
  if (type === 'application/x-www-form-urlencoded') return new UrlencodedParser(limits, (name, value) => enqueue(() => onPart({ kind: 'field', name, value })));
  // multipart/mixed and the like: a form sent with the wrong type.
  if (type.startsWith('multipart/')) throw malformedForm();
  // JSON, text, anything else: not a form (Flask's request.form is empty); read and dropped, within the limit.
  return new Writable({ write: (_chunk, _encoding, done) => done() });
}

function multipartParser(req: Request, limits: FormLimits, enqueue: Enqueue, onPart: FormPartHandler): Writable {
  const parser = busboy({
    headers: req.headers,
    limits: { fieldSize: limits.maxFieldBytes, fields: limits.maxParts, files: limits.maxParts },
    // Paths in filenames kept; names, values and filenames as bytes (decodeUtf8, utf8Filename).
    preservePath: true,
    defCharset: 'latin1',
    defParamCharset: 'latin1',
    fileHwm: FILE_CHUNK_BYTES,
  });
  const tooMany = () => parser.destroy(bodyTooLarge());
  parser.on('fieldsLimit', tooMany).on('filesLimit', tooMany);
  parser.on('field', (name, value, info) => {
    if (info.valueTruncated) parser.destroy(bodyTooLarge());
    else if (name !== undefined) enqueue(() => onPart({ kind: 'field', name, value }));
  });
  parser.on('file', (name, content, { filename, mimeType }) => {
    // A truncated body errors the part's stream and the parser alike; the parser's error is the one
    // answered (400). A part still waiting in the queue has no reader yet: without this listener
    // its error would be unhandled and end the process.
    content.on('error', () => {});
    if (name === undefined) {
      content.resume();
    } else if (filename === undefined) {
      // busboy counts an application/octet-stream part without a filename as a file; Werkzeug as a field.
      enqueue(async () => onPart({ kind: 'field', name, value: await readBytes(content, limits.maxFieldBytes) }));
    } else {
      enqueue(() => onPart({ kind: 'file', name, filename: utf8Filename(filename), contentType: mimeType, content }));
    }
  });
  return parser;
}

/** A part's content as a byte string, as busboy hands over its fields. */
async function readBytes(content: Readable, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of content) {
    size += chunk.length;
    if (size > maxBytes) throw bodyTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('latin1');
}

// '+' is a space and %XX a byte; a broken escape stays as written.
const unquotePlus = (text: string) =>
  text.replace(/\+|%[0-9a-fA-F]{2}/g, (match) => (match === '+' ? ' ' : String.fromCharCode(parseInt(match.slice(1), 16))));

// Python's parse_qsl (Werkzeug's form parser), streamed one name=value pair at a time: '+' is a
// space, a broken %-escape stays as written, a pair without '=' is an empty value. Names and values
// are handed over as bytes, like busboy's.
class UrlencodedParser extends Writable {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private pairs = 0;

  constructor(private readonly limits: FormLimits, private readonly onField: (name: string, value: string) => void) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error) => void): void {
    let start = 0;
    for (let amp = chunk.indexOf(0x26); amp !== -1; amp = chunk.indexOf(0x26, start)) {
      this.keep(chunk.subarray(start, amp));
      start = amp + 1;
      const error = this.endPair();
      if (error) return done(error);
    }
    this.keep(chunk.subarray(start));
    done(this.pendingBytes > this.limits.maxFieldBytes ? bodyTooLarge() : undefined);
  }

  override _final(done: (error?: Error) => void): void {
    done(this.endPair());
  }

  private keep(bytes: Buffer): void {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
  }

  private endPair(): Error | undefined {
    const pair = Buffer.concat(this.pending, this.pendingBytes).toString('latin1');
    this.pending = [];
    this.pendingBytes = 0;
    if (pair === '') return undefined;
    if (pair.length > this.limits.maxFieldBytes || ++this.pairs > this.limits.maxParts) return bodyTooLarge();
    const equals = pair.indexOf('=');
    if (equals === -1) this.onField(unquotePlus(pair), '');
    else this.onField(unquotePlus(pair.slice(0, equals)), unquotePlus(pair.slice(equals + 1)));
    return undefined;
  }
}

function byteLimit(maxBytes: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      done(seen > maxBytes ? bodyTooLarge() : undefined, chunk);
    },
  });
}
