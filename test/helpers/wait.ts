// Waits for something the code under test does on its own time (a log line, a socket closing),
// by polling a condition, never by sleeping a fixed time; fails with `what` if it never happens.
export async function waitFor(condition: () => boolean | Promise<boolean>, what = 'condition', timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
