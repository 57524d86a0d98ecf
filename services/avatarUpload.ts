// The relay behind POST /api/avatar/add: the client's form is parsed as it arrives and only the
// allowed fields and real file parts are re-encoded to the avatar service as they arrive, file
// bytes piped through with backpressure both ways; nothing is held whole in memory or on disk.
import type { Request } from 'express';
import type { Readable } from 'node:stream';
import { readFormParts, type FormLimits, type FormPart } from './forms.js';
import type { UpstreamResponse } from './httpClient.js';
import { MultipartEncoder } from './multipartEncoder.js';

/** What the upstream is sent: urlencoded fields when no file is forwarded, else a multipart stream. */
export type UploadBody = { form: Record<string, string> } | { stream: Readable; contentType: string };

export interface UploadRelay {
  /** Forwarded text fields, in the order the Flask original sent them. */
  fields: readonly string[];
  /** Forwarded file fields. */
  files: readonly string[];
  limits: FormLimits;
  /** Throws (an HttpError) to refuse a field's value before anything more is forwarded. */
  checkField(name: string, value: string): void;
  /** Starts the upstream call; `signal` aborts it. */
  send(body: UploadBody, signal: AbortSignal): Promise<UpstreamResponse>;
}

type Outcome = { response: UpstreamResponse } | { error: unknown };

/**
 * Resolves with the upstream's answer; rejects with the form's 400/413, a refused field, or the
 * upstream failure. Whatever ends the relay early (client gone, bad form, upstream failed or
 * answered before the body was through) stops both sides: no upstream request is left open.
 */
export async function relayUpload(req: Request, relay: UploadRelay): Promise<UpstreamResponse> {
  const fieldOrder = new Map(relay.fields.map((name, i) => [name, i]));
  const fileFields = new Set(relay.files);
  const fields = new Map<string, string>();
  const filesSeen = new Set<string>();
  const abortUpstream = new AbortController();
  const stopReading = new AbortController();
  let encoder: MultipartEncoder | undefined;
  let upstream: Promise<UpstreamResponse> | undefined;
  let outcome: Outcome | undefined;

  function start(body: UploadBody): void {
    upstream = relay.send(body, AbortSignal.any([req.signal, abortUpstream.signal]));
    // An answer or failure before the client's body is through ends the reading too.
    upstream.then(
      (response) => { outcome = { response }; stopReading.abort(); },
      (error: unknown) => { outcome = { error }; stopReading.abort(); },
    );
  }

  const inFlaskOrder = () => [...fields].sort(([a], [b]) => fieldOrder.get(a)! - fieldOrder.get(b)!);

  async function forward(part: FormPart): Promise<void> {
    if (part.kind === 'field') {
      if (!fieldOrder.has(part.name) || fields.has(part.name)) return;
      relay.checkField(part.name, part.value);
      fields.set(part.name, part.value);
      encoder?.field(part.name, part.value);
      return;
    }
    // An empty file input (filename="") is no file; a repeated one keeps the first (request.files[...]).
    if (!fileFields.has(part.name) || filesSeen.has(part.name) || part.filename === '') {
      part.content.resume();
      return;
    }
    filesSeen.add(part.name);
    if (!encoder) {
      // The first real file decides the encoding: the fields read so far go first, then the file.
      encoder = new MultipartEncoder();
      for (const [name, value] of inFlaskOrder()) encoder.field(name, value);
      start({ stream: encoder.body, contentType: encoder.contentType });
    }
    await encoder.file(part.name, part.filename, part.contentType, part.content);
  }

  try {
    await readFormParts(req, relay.limits, forward, stopReading.signal);
  } catch (error) {
    encoder?.destroy();
    if (outcome && 'response' in outcome) return outcome.response;
    abortUpstream.abort();
    throw outcome?.error ?? error;
  }
  if (encoder) encoder.end();
  else start({ form: Object.fromEntries(inFlaskOrder()) });
  return upstream!;
}
