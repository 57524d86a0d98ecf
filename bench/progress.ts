// Progress of a long phase on stderr: one line rewritten in place on a terminal, a line every few
// seconds otherwise (CI logs; a short step prints nothing), nothing at all when quiet (the test).
export interface Progress {
  update(text: string): void;
  done(): void;
}

const PLAIN_EVERY_MS = 5000;

export function createProgress(stream: NodeJS.WriteStream | undefined): Progress {
  if (!stream) return { update() {}, done() {} };
  let lastPlain = 0;
  let shown = false;
  return {
    update(text) {
      if (stream.isTTY) {
        stream.write(`\r\x1b[2K${text}`);
        shown = true;
      } else if (lastPlain === 0) {
        lastPlain = Date.now();
      } else if (Date.now() - lastPlain >= PLAIN_EVERY_MS) {
        stream.write(`${text}\n`);
        lastPlain = Date.now();
      }
    },
    done() {
      if (shown) stream.write('\r\x1b[2K');
      shown = false;
      lastPlain = 0;
    },
  };
}
