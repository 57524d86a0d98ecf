// One GET whose outcome is a value: undefined for a 200, else what went wrong (an HTTP status or a
// socket error code), whatever way the exchange ends.
import http from 'node:http';

export function getOnce(url: string, agent: http.Agent, headers: Record<string, string> | undefined, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (failure?: string) => {
      if (settled) return;
      settled = true;
      resolve(failure);
    };
    const req = http.get(url, { agent, headers, timeout: timeoutMs }, (res) => {
      res.resume();
      res.once('end', () => finish(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`));
      res.once('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    });
    req.once('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    req.once('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
  });
}

export function countFailure(failures: Record<string, number>, kind: string): void {
  failures[kind] = (failures[kind] ?? 0) + 1;
}
