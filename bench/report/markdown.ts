// docs/performance.md and docs/zh/性能对比报告.md, written from one run: date, machine, commands,
// the aims checked, every table, the chart, and what was tried on the gateway (tried.<lang>.md).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResults } from '../results.js';
import { burstChart } from './chart.js';
import type { Machine } from './machine.js';
import { renderMarkdown, type Table } from './table.js';
import { aimsTable, burstTable, soakTable, throughputTables, uploadTable } from './tables.js';
import { WORDS, type Lang } from './words.js';

export interface ReportFile {
  /** Relative to the project root. */
  path: string;
  text: string;
}

const DOCS: Record<Lang, { report: string; chart: string }> = {
  en: { report: 'docs/performance.md', chart: 'docs/performance-burst.svg' },
  zh: { report: 'docs/zh/性能对比报告.md', chart: 'docs/zh/performance-burst.svg' },
};

function tried(lang: Lang): string {
  return fs.readFileSync(fileURLToPath(new URL(`./tried.${lang}.md`, import.meta.url)), 'utf8').trim();
}

function section(title: string, tables: Array<Table | undefined>, notRun: string): string {
  const present = tables.filter((table): table is Table => table !== undefined);
  const body = present.length ? present.map((table) => `**${table.title}**\n\n${renderMarkdown(table)}`).join('\n\n') : notRun;
  return `## ${title}\n\n${body}`;
}

function renderReport(results: BenchResults, machine: Machine, benchCommand: string, lang: Lang, chartFile?: string): string {
  const w = WORDS[lang].report;
  const date = results.startedAt.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  const machineValues = [machine.cpu, String(machine.cores), `${machine.memoryGb} GiB`, machine.os, machine.node, machine.openFilesLimit];
  const aims = aimsTable(results, lang);
  const burst = burstTable(results, lang);
  const chart = chartFile && burst ? `\n\n![${WORDS[lang].report.chartAlt}](${chartFile})` : '';
  return [
    `# ${w.title}`,
    w.generated(date),
    `## ${w.machine}\n\n${w.machineRows.map((name, i) => `- ${name}: ${machineValues[i]}`).join('\n')}`,
    `## ${w.commands}\n\n${w.commandsIntro}\n\n\`\`\`sh\n${[benchCommand, ...results.gatewayCommands].join('\n')}\n\`\`\``,
    `## ${w.aims}\n\n${renderMarkdown(aims)}`,
    section(w.burst, [burst], w.notRun) + chart,
    section(w.throughput, throughputTables(results, lang), w.notRun),
    section(w.upload, [uploadTable(results, lang)], w.notRun),
    section(w.soak, [soakTable(results, lang)], w.soakNotRun),
    `## ${w.tried}\n\n${tried(lang)}`,
  ].join('\n\n') + '\n';
}

/** The report files of a run, in both languages, with their charts. */
export function reportFiles(results: BenchResults, machine: Machine, benchCommand: string): ReportFile[] {
  const files: ReportFile[] = [];
  for (const lang of ['en', 'zh'] as const) {
    const chart = burstChart(results, lang);
    const docs = DOCS[lang];
    if (chart) files.push({ path: docs.chart, text: chart });
    const relativeChart = chart && path.relative(path.dirname(docs.report), docs.chart);
    files.push({ path: docs.report, text: renderReport(results, machine, benchCommand, lang, relativeChart) });
  }
  return files;
}

export function writeReportFiles(root: string, files: ReportFile[]): void {
  for (const file of files) {
    const full = path.join(root, file.path);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, file.text);
  }
}
