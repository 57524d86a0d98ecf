// The report's chart: time until the last answer against users at once, log-log, one line each
// for before, after and direct. Plain SVG, no dependencies, readable on GitHub.
import type { BenchResults, BurstMode } from '../results.js';
import { WORDS, type Lang } from './words.js';

const WIDTH = 760;
const HEIGHT = 440;
const MARGIN = { left: 70, right: 210, top: 50, bottom: 60 };
const SERIES: Array<{ mode: BurstMode; color: string; dash?: string }> = [
  { mode: 'before', color: '#d62728' },
  { mode: 'after', color: '#1f77b4' },
  { mode: 'direct', color: '#7f7f7f', dash: '6 4' },
  { mode: 'target', color: '#2ca02c' },
];

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Powers of ten (and 2x, 5x of them) spanning [min, max], for log-axis ticks. */
function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let decade = 10 ** Math.floor(Math.log10(min)); decade <= max; decade *= 10) {
    for (const step of [1, 2, 5]) {
      const tick = decade * step;
      if (tick >= min * 0.999 && tick <= max * 1.001) ticks.push(tick);
    }
  }
  return ticks;
}

export function burstChart(results: BenchResults, lang: Lang): string | undefined {
  const rows = results.burst?.rows.filter((row) => row.result && row.result.successes > 0) ?? [];
  if (rows.length === 0) return undefined;
  const w = WORDS[lang].chart;
  const users = rows.map((row) => row.users);
  const times = rows.map((row) => row.result!.wallMs / 1000);
  const xMin = Math.min(...users);
  const xMax = Math.max(...users, xMin * 10);
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...times)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...times) * 1.05));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (v: number) => MARGIN.left + (Math.log10(v / xMin) / Math.log10(xMax / xMin)) * plotW;
  const y = (v: number) => MARGIN.top + plotH - (Math.log10(v / yMin) / Math.log10(yMax / yMin)) * plotH;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${MARGIN.left}" y="28" font-size="15" font-weight="bold">${escapeXml(w.title)}</text>`,
  ];
  for (const tick of logTicks(xMin, xMax)) {
    parts.push(`<line x1="${x(tick)}" y1="${MARGIN.top}" x2="${x(tick)}" y2="${MARGIN.top + plotH}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x(tick)}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${tick}</text>`);
  }
  for (const tick of logTicks(yMin, yMax)) {
    parts.push(`<line x1="${MARGIN.left}" y1="${y(tick)}" x2="${MARGIN.left + plotW}" y2="${y(tick)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${MARGIN.left - 8}" y="${y(tick) + 4}" text-anchor="end">${tick}</text>`);
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 15}" text-anchor="middle">${escapeXml(w.x)}</text>`);
  parts.push(`<text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(w.y)}</text>`);

  let legendY = MARGIN.top + 10;
  for (const series of SERIES) {
    const points = rows.filter((row) => row.mode === series.mode).sort((a, b) => a.users - b.users)
      .map((row) => [x(row.users), y(row.result!.wallMs / 1000)]);
    if (points.length === 0) continue;
    const dash = series.dash ? ` stroke-dasharray="${series.dash}"` : '';
    parts.push(`<line x1="${WIDTH - MARGIN.right + 15}" y1="${legendY}" x2="${WIDTH - MARGIN.right + 45}" y2="${legendY}" stroke="${series.color}" stroke-width="2.5"${dash}/>`);
    parts.push(`<text x="${WIDTH - MARGIN.right + 52}" y="${legendY + 4}">${escapeXml(w[series.mode])}</text>`);
    legendY += 22;
    parts.push(`<polyline points="${points.map((point) => point.map((v) => v.toFixed(1)).join(',')).join(' ')}" fill="none" stroke="${series.color}" stroke-width="2.5"${dash}/>`);
    for (const [cx, cy] of points) parts.push(`<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="3.5" fill="${series.color}"/>`);
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
