// `npm run bench`: the seed's concurrency table and the performance aims, measured on this machine
// (see bench/options.ts for the flags, docs/performance.md for a report it wrote).
import { parseOptions, USAGE, UsageError } from './options.js';
import { killAll, ROOT } from './procs/processes.js';
import { createProgress } from './progress.js';
import { describeMachine } from './report/machine.js';
import { reportFiles, writeReportFiles } from './report/markdown.js';
import { runBench } from './run.js';

let options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS'))) throw error;
  console.error(`${(error as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (options === 'help') {
  console.log(USAGE);
  process.exit(0);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

const results = await runBench(options, { progress: createProgress(process.stderr), print: (text) => console.log(text) });
if (options.report) {
  const command = ['npm run bench --', ...process.argv.slice(2)].join(' ');
  const files = reportFiles(results, describeMachine(), command);
  writeReportFiles(ROOT, files);
  console.log(`\nwrote ${files.map((file) => file.path).join(', ')}`);
}
