// Writes a multipart/form-data body part by part as the parts become known, file contents piped
// through with backpressure: the stream given to the upstream request is `body`.
import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

// Header parameters as browsers and Python's httpx write them: raw UTF-8, quotes and line breaks
// percent-escaped, backslashes doubled.
function quoted(value: string): string {
  return '"' + value.replace(/\\/g, '\\\\').replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A') + '"';
}

export class MultipartEncoder {
  readonly boundary = `----avatar-gateway-${randomBytes(16).toString('hex')}`;
  readonly body = new PassThrough();

  constructor() {
    // A broken body surfaces through the upstream call and the form reader, which both see it.
    this.body.on('error', () => {});
  }

  get contentType(): string {
    return `multipart/form-data; boundary=${this.boundary}`;
  }

  field(name: string, value: string): void {
    this.write(`--${this.boundary}\r\nContent-Disposition: form-data; name=${quoted(name)}\r\n\r\n${value}\r\n`);
  }

  /** Resolves once `content` has been handed on to the upstream request (the slower side sets the pace). */
  async file(name: string, filename: string, contentType: string, content: Readable): Promise<void> {
    this.write(`--${this.boundary}\r\nContent-Disposition: form-data; name=${quoted(name)}; filename=${quoted(filename)}\r\n`
      + `Content-Type: ${contentType}\r\n\r\n`);
    await pipeline(content, this.body, { end: false });
    this.write('\r\n');
  }

  end(): void {
    this.body.end(`--${this.boundary}--\r\n`);
  }

  destroy(): void {
    this.body.destroy();
  }

  private write(text: string): void {
    if (!this.body.destroyed) this.body.write(text);
  }
}
