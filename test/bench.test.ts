// Smoke test of `npm run bench`: every phase at a tiny size against the real gateway (child
// processes, as in a full run), checking that every table and both reports come out. No timing
// is asserted: these figures depend on the machine.
import { expect } from 'chai';
import { parseOptions, UsageError, type BenchOptions } from '../bench/options.js';
import { createProgress } from '../bench/progress.js';
import { reportFiles } from '../bench/report/markdown.js';
import { describeMachine } from '../bench/report/machine.js';
import { allTables } from '../bench/report/tables.js';
import type { BenchResults } from '../bench/results.js';
import { runBench } from '../bench/run.js';
import { sendingAt } from '../bench/clients/soak.js';

const TINY = ['--quick', '--users', '1,3', '--latency', '20', '--before-max-users', '1', '--connections', '4',
  '--duration', '0.3', '--upload-mib', '1', '--soak', '1', '--soak-rate', '20'];

describe('bench', function () {
  this.timeout(40_000);
  let results: BenchResults;
  const printed: string[] = [];

  before(async () => {
    const options = parseOptions(TINY) as BenchOptions;
    results = await runBench(options, { progress: createProgress(undefined), print: (text) => printed.push(text) });
  });

  it('runs every burst row, skipping "before" above --before-max-users', () => {
    const rows = results.burst!.rows.map((row) => `${row.mode} ${row.users} ${row.result ? row.result.successes : 'skipped'}`);
    expect(rows).to.have.members(['before 1 1', 'before 3 skipped', 'after 1 1', 'after 3 3', 'direct 1 1', 'direct 3 3']);
    const after = results.burst!.rows.find((row) => row.mode === 'after' && row.users === 3)!;
    expect(after.peakRssBytes).to.be.greaterThan(0);
  });

  it('measures the direct service, the bare proxy and the gateway under load without errors', () => {
    expect(results.throughput!.rows.map((row) => row.peer)).to.deep.equal(['direct', 'bare Node proxy', 'gateway']);
    for (const row of results.throughput!.rows) {
      expect(row.many.total, row.peer).to.be.greaterThan(0);
      expect(row.one.total, row.peer).to.be.greaterThan(0);
      expect(row.many.errors, row.peer).to.equal(0);
    }
  });

  it('streams the upload through the gateway with the same sha256 at the upstream', () => {
    const rows = results.upload!.rows;
    expect(rows.map((row) => [row.path, row.result.status, row.sha256Ok])).to.deep.equal([['direct', 200, true], ['gateway', 200, true]]);
    expect(rows[1].rssGrowthBytes).to.be.a('number');
  });

  it('soaks without a single error and samples the gateway', () => {
    const soak = results.soak!;
    expect(soak.result.sent).to.be.greaterThan(0);
    expect(soak.result.failures).to.deep.equal({});
    expect(soak.result.ok).to.equal(soak.result.sent);
    expect(soak.samples!.first!.openFds).to.be.greaterThan(0);
  });

  it('prints every table, the aims last', () => {
    const titles = allTables(results, 'en').map((table) => table.title.split(':')[0]);
    expect(titles).to.deep.equal(['Burst', 'Throughput', 'Added latency', 'Upload', 'Soak', 'The aims of performance.md, checked against this run']);
    expect(printed).to.have.length(titles.length);
    expect(printed.at(-1)).to.include('1000 users at once').and.include('not measured');
  });

  it('writes both reports and their charts', () => {
    const files = reportFiles(results, describeMachine(), 'npm run bench -- --quick');
    expect(files.map((file) => file.path)).to.deep.equal(['docs/performance-burst.svg', 'docs/performance.md', 'docs/zh/performance-burst.svg', 'docs/zh/性能对比报告.md']);
    const [svg, en, , zh] = files.map((file) => file.text);
    expect(svg).to.match(/^<svg [^>]*>/).and.include('<polyline');
    expect(en).to.include('# Performance report').and.include('![').and.include(process.version).and.include('npm run bench -- --quick');
    expect(zh).to.include('# 性能对比报告').and.include('](performance-burst.svg)').and.include('未测量');
  });

  it('refuses inconsistent options', () => {
    expect(() => parseOptions(['--target', 'http://example.test'])).to.throw(UsageError, '--target and --token go together');
    expect(() => parseOptions(['--phases', 'soak'])).to.throw(UsageError, '--soak');
    expect(() => parseOptions(['--target', 'http://x.test', '--token', 't', '--phases', 'upload'])).to.throw(UsageError, 'upload');
  });

  it('pauses the soak traffic across the 5 s keep-alive limit', () => {
    expect([0, 9.9, 10.1, 13.8, 14, 23.8, 24.1, 28.2, 28.4].map(sendingAt)).to.deep.equal([true, true, false, false, true, true, false, false, true]);
  });
});
