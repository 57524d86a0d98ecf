// Runs the chosen phases in order against a simulated avatar service (or --target), printing each
// phase's tables as it ends; everything started here is stopped here, whatever happens.
import { PHASES, type BenchOptions, type PhaseName } from './options.js';
import { createContext, type BenchContext } from './context.js';
import { burstPhase } from './phases/burst.js';
import { soakPhase } from './phases/soak.js';
import { throughputPhase } from './phases/throughput.js';
import { uploadPhase } from './phases/upload.js';
import { killAll } from './procs/processes.js';
import { startSimulator } from './procs/simulator.js';
import type { Progress } from './progress.js';
import { renderText } from './report/table.js';
import { aimsTable, burstTable, soakTable, throughputTables, uploadTable } from './report/tables.js';
import type { BenchResults } from './results.js';
import { benchTokens } from './tokens.js';

const RUN: Record<PhaseName, (ctx: BenchContext) => Promise<void>> = {
  burst: burstPhase,
  throughput: throughputPhase,
  upload: uploadPhase,
  soak: soakPhase,
};

const TABLES = {
  burst: (results: BenchResults) => [burstTable(results, 'en')],
  throughput: (results: BenchResults) => throughputTables(results, 'en'),
  upload: (results: BenchResults) => [uploadTable(results, 'en')],
  soak: (results: BenchResults) => [soakTable(results, 'en')],
} satisfies Record<PhaseName, unknown>;

export interface BenchIo {
  progress: Progress;
  /** Where the tables go (the terminal). */
  print(text: string): void;
}

export async function runBench(options: BenchOptions, io: BenchIo): Promise<BenchResults> {
  const tokens = options.target
    ? { secret: '', tutor: options.target.token, student: options.target.token }
    : benchTokens();
  const sim = options.target ? undefined : await startSimulator(options.latencyMs);
  const ctx = createContext(options, tokens, sim, io.progress);
  try {
    for (const phase of PHASES.filter((name) => options.phases.includes(name))) {
      await RUN[phase](ctx);
      for (const table of TABLES[phase](ctx.results)) if (table) io.print(`\n${renderText(table)}\n`);
    }
    io.print(`\n${renderText(aimsTable(ctx.results, 'en'))}\n`);
    return ctx.results;
  } finally {
    io.progress.done();
    await sim?.stop();
    killAll();
  }
}
