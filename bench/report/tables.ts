// The run's results as tables, in either language: one builder per phase, plus the aims.
import type { BenchResults, BurstMode } from '../results.js';
import { checkAims, FLASK_BEST_REQ_PER_S, type AimCheck } from './aims.js';
import { count, DASH, kilobytes, megabytes, millis, ratio, seconds, signedMillis } from './format.js';
import type { Table } from './table.js';
import { WORDS, type Lang } from './words.js';

const MODE_ORDER: BurstMode[] = ['before', 'after', 'direct', 'target'];

export function burstTable(results: BenchResults, lang: Lang): Table | undefined {
  const burst = results.burst;
  if (!burst) return undefined;
  const w = WORDS[lang];
  const rows = [...burst.rows].sort((a, b) => a.users - b.users || MODE_ORDER.indexOf(a.mode) - MODE_ORDER.indexOf(b.mode));
  return {
    title: w.burstTitle(burst.latencyMs),
    columns: w.burstColumns,
    rows: rows.map((row) => {
      const head = [String(row.users), w.mode[row.mode]];
      const r = row.result;
      if (!r) return [...head, w.skipped(row.users * burst.latencyMs), '', '', '', '', '', '', ''];
      const serialMs = row.users * burst.latencyMs;
      const answered = r.successes === r.users ? String(r.successes) : `${r.successes}/${r.users} (${w.failed(r.failures)})`;
      return [
        ...head,
        seconds(r.wallMs),
        answered,
        seconds(r.latency.avg),
        seconds(r.latency.p50),
        seconds(r.latency.p99),
        count(r.successes / (r.wallMs / 1000)),
        ratio(serialMs / r.wallMs),
        row.peakRssBytes === undefined ? DASH : megabytes(row.peakRssBytes),
      ];
    }),
    notes: w.burstNotes,
  };
}

export function throughputTables(results: BenchResults, lang: Lang): Table[] {
  const throughput = results.throughput;
  if (!throughput) return [];
  const w = WORDS[lang];
  const direct = throughput.rows.find((row) => row.peer === 'direct');
  const gateway = throughput.rows.find((row) => row.peer === 'gateway');
  const bare = throughput.rows.find((row) => row.peer === 'bare Node proxy');
  const vsDirect = (rps: number) => (direct ? ratio(rps / direct.many.requestsPerSecond) : DASH);
  const many: Table = {
    title: w.throughputTitle(throughput.connections, throughput.durationS),
    columns: w.throughputColumns,
    rows: throughput.rows.map((row) => [
      w.peer[row.peer],
      count(row.many.requestsPerSecond),
      millis(row.many.latency.p50),
      millis(row.many.latency.p99),
      vsDirect(row.many.requestsPerSecond),
      count(row.many.errors),
    ]),
    notes: gateway && bare ? [w.throughputNote(ratio(gateway.many.requestsPerSecond / bare.many.requestsPerSecond), ratio(gateway.many.requestsPerSecond / FLASK_BEST_REQ_PER_S))] : [],
  };
  const one: Table = {
    title: w.latencyTitle(throughput.durationS),
    columns: w.latencyColumns,
    rows: throughput.rows.map((row) => [
      w.peer[row.peer],
      count(row.one.requestsPerSecond),
      millis(row.one.latency.p50),
      millis(row.one.latency.p99),
      direct && row !== direct ? signedMillis(row.one.latency.p50 - direct.one.latency.p50) : DASH,
      direct && row !== direct ? signedMillis(row.one.latency.p99 - direct.one.latency.p99) : DASH,
    ]),
  };
  return [many, one];
}

const size = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(bytes % 2 ** 30 ? 2 : 0)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`);

export function uploadTable(results: BenchResults, lang: Lang): Table | undefined {
  const upload = results.upload;
  if (!upload) return undefined;
  const w = WORDS[lang];
  return {
    title: w.uploadTitle(size(upload.sizeBytes)),
    columns: w.uploadColumns,
    rows: upload.rows.map((row) => [
      w.uploadPath[row.path],
      seconds(row.result.ms),
      (upload.sizeBytes / 1e6 / (row.result.ms / 1000)).toFixed(0),
      String(row.result.status),
      row.sha256Ok ? w.shaOk : w.shaBad(row.received?.size),
      row.rssGrowthBytes === undefined ? DASH : megabytes(row.rssGrowthBytes),
    ]),
  };
}

export function soakTable(results: BenchResults, lang: Lang): Table | undefined {
  const soak = results.soak;
  if (!soak) return undefined;
  const w = WORDS[lang];
  const { result, samples } = soak;
  const errors = Object.values(result.failures).reduce((sum, n) => sum + n, 0);
  const rows = [
    [w.soakRows.sent, count(result.sent)],
    [w.soakRows.ok, count(result.ok)],
    [w.soakRows.errors, errors === 0 ? '0' : `${errors} (${w.failed(result.failures)})`],
  ];
  if (samples?.first && samples.last) {
    rows.push([w.soakRows.rss, [samples.first.rssBytes, samples.last.rssBytes, samples.peakRssBytes].map(megabytes).join(' / ')]);
    rows.push([w.soakRows.fds, [samples.first.openFds, samples.last.openFds, samples.peakFds].join(' / ')]);
  }
  return { title: w.soakTitle(result.seconds, soak.ratePerSecond), columns: w.soakColumns, rows, notes: [w.soakNote] };
}

function measuredText(check: AimCheck, lang: Lang): string {
  const w = WORDS[lang];
  const f = check.figures;
  if (!f) return DASH;
  switch (check.id) {
    case 'burst1000':
    case 'burst5000':
      return w.measured.burst(f, seconds(f.wallMs), Number.isNaN(f.rssBytes) ? '' : megabytes(f.rssBytes));
    case 'throughput':
      return w.measured.throughput(f);
    case 'addedLatency':
      return w.measured.addedLatency(signedMillis(f.addedP50), signedMillis(f.addedP99));
    case 'upload':
      return w.measured.upload(size(f.sizeBytes), megabytes(f.rssGrowthBytes), ratio(f.timeRatio), f.sha256Ok === 1);
    case 'memoryPerWait':
      return w.measured.memoryPerWait(kilobytes(f.bytesPerRequest));
  }
}

export function aimsTable(results: BenchResults, lang: Lang): Table {
  const w = WORDS[lang];
  const checks = checkAims(results);
  const named = (verdict: AimCheck['verdict']) => checks.filter((check) => check.verdict === verdict).map((check) => w.aim[check.id][0]);
  return {
    title: w.aimsTitle,
    columns: w.aimsColumns,
    rows: checks.map((check) => [...w.aim[check.id], measuredText(check, lang), w.verdict[check.verdict]]),
    notes: [w.summary(named('met'), named('not met'), named('not measured'))],
  };
}

/** Every table of the run, in the order the report shows them. */
export function allTables(results: BenchResults, lang: Lang): Table[] {
  return [burstTable(results, lang), ...throughputTables(results, lang), uploadTable(results, lang), soakTable(results, lang), aimsTable(results, lang)]
    .filter((table): table is Table => table !== undefined);
}
