// A generated video upload of any size, sent as the frontend sends it (multipart/form-data with
// `name` and a `prompt_face` file), streamed with backpressure so the client holds one chunk.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const CHUNK_BYTES = 1024 * 1024;

export interface GeneratedFile {
  sizeBytes: number;
  sha256: string;
  /** A fresh stream of the same bytes each time. */
  chunks(): Generator<Buffer>;
}

/** sizeBytes of random-looking content: one random chunk, repeated; its sha256 known in advance. */
export function generateFile(sizeBytes: number): GeneratedFile {
  const block = randomBytes(CHUNK_BYTES);
  function* chunks(): Generator<Buffer> {
    for (let sent = 0; sent < sizeBytes; sent += CHUNK_BYTES) yield block.subarray(0, Math.min(CHUNK_BYTES, sizeBytes - sent));
  }
  const hash = createHash('sha256');
  for (const chunk of chunks()) hash.update(chunk);
  return { sizeBytes, sha256: hash.digest('hex'), chunks };
}

export interface UploadResult {
  status: number;
  ms: number;
  body: string;
}

export async function uploadAvatar(
  url: string,
  file: GeneratedFile,
  name: string,
  headers: Record<string, string> = {},
  onSent?: (bytes: number) => void,
): Promise<UploadResult> {
  const boundary = `----bench${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n${name}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="prompt_face"; filename="${name}.mp4"\r\n` +
      'Content-Type: video/mp4\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const started = performance.now();
  const req = http.request(url, {
    method: 'POST',
    headers: {
      ...headers,
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'content-length': String(head.length + file.sizeBytes + tail.length),
    },
  });
  const answered = new Promise<UploadResult>((resolve, reject) => {
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started, body }));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
  // An early answer (403, 413) ends the upload half-way: the answer is the result, not the broken pipe.
  const sent = pipeline(Readable.from((function* () {
    yield head;
    let sent = 0;
    for (const chunk of file.chunks()) {
      yield chunk;
      onSent?.((sent += chunk.length));
    }
    yield tail;
  })()), req).catch(() => undefined);
  const result = await answered;
  await sent;
  return result;
}
