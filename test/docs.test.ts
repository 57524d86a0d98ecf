// The docs stay true to the code: every variable config.ts reads is documented in .env.example and
// in the READMEs' configuration tables, and the app's routes and docs/openapi.yaml's paths are the
// same set. Both lists come from the code itself (an env object that records what loadConfig reads,
// the running app's router), so neither can drift from what the gateway really does.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import YAML from 'yaml';
import { loadConfig } from '../config.js';
import { startTestGateway, TEST_SECRET, type TestGateway } from './helpers/gateway.js';
import { send } from './helpers/http.js';
import { waitFor } from './helpers/wait.js';

const root = new URL('../', import.meta.url);
const read = (file: string) => fs.readFileSync(new URL(file, root), 'utf8');

/** Every variable name loadConfig looks at, recorded by the env object it is given. */
function variablesConfigReads(): string[] {
  const names = new Set<string>();
  const env = new Proxy<Record<string, string | undefined>>({ JWT_SECRET_KEY: TEST_SECRET }, {
    get(target, name) {
      if (typeof name === 'string') names.add(name);
      return target[name as string];
    },
  });
  loadConfig(env);
  return [...names].sort();
}

/** `NAME=` lines of an env file, set or commented out. */
function envFileVariables(text: string): string[] {
  return [...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]);
}

/** `NAME=value` lines of an env file with a value, set or commented out, without their comments. */
function envFileValues(text: string): Array<[string, string]> {
  return [...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=(\S+)/gm)].map((m) => [m[1], m[2]]);
}

/** Markdown table rows as cells, trimmed. */
function tableRows(markdown: string): string[][] {
  return markdown.split('\n')
    .filter((line) => /^\s*\|/.test(line))
    .map((line) => line.trim().replace(/^\||\|$/g, '').split('|').map((cell) => cell.trim()));
}

/**
 * The configuration table's default column, for the variables whose default is a value: setting
 * the variable to the documented value must change nothing in what loadConfig returns.
 */
function wrongDefaults(documented: Array<[string, string]>): string[] {
  const base = { JWT_SECRET_KEY: TEST_SECRET };
  const defaults = JSON.stringify(loadConfig(base));
  return documented
    .filter(([name, value]) => JSON.stringify(loadConfig({ ...base, [name]: value })) !== defaults)
    .map(([name, value]) => `${name}=${value}`);
}

/**
 * The default column of a README's configuration table: [variable, value] for a default written as
 * one backticked value; "unset" and "required" defaults (in the README's words) have no value.
 */
function tableDefaults(markdown: string, noValue: RegExp): { values: Array<[string, string]>; unreadable: string[] } {
  const values: Array<[string, string]> = [];
  const unreadable: string[] = [];
  for (const [variable, fallback] of tableRows(markdown)) {
    const name = /^`([A-Z][A-Z0-9_]*)`$/.exec(variable)?.[1];
    if (!name) continue;
    const value = /^`([^`]+)`$/.exec(fallback)?.[1];
    if (value !== undefined) values.push([name, value]);
    else if (!noValue.test(fallback)) unreadable.push(`${name}: ${fallback}`);
  }
  return { values, unreadable };
}

/** The backticked variable names in the first column of a document's Markdown tables. */
function tableVariables(markdown: string): string[] {
  const names: string[] = [];
  for (const line of markdown.split('\n')) {
    const firstCell = /^\s*\|([^|]*)\|/.exec(line)?.[1];
    if (!firstCell) continue;
    for (const m of firstCell.matchAll(/`([A-Z][A-Z0-9_]*)`/g)) names.push(m[1]);
  }
  return names;
}

function missingFrom(documented: string[], wanted: string[]): string[] {
  const have = new Set(documented);
  return wanted.filter((name) => !have.has(name));
}

interface AppRoute {
  /** The full path: an Express path string, or the mount prefix and the route's own RegExp. */
  prefix: string;
  path: string | RegExp;
  methods: string[];
}

interface RouterLayer {
  route?: { path: string | RegExp; methods: Record<string, boolean> };
  rawPath?: string | RegExp;
  handle: { stack?: RouterLayer[] };
}

/** Walks Express 5's router stack: routes, and routers mounted with app.use(prefix, router). */
function routesOf(stack: RouterLayer[], prefix = ''): AppRoute[] {
  return stack.flatMap((layer): AppRoute[] => {
    if (layer.route) {
      const methods = Object.keys(layer.route.methods).filter((m) => m !== '_all').map((m) => m.toUpperCase());
      return [{ prefix, path: layer.route.path, methods }];
    }
    if (layer.handle.stack && typeof layer.rawPath === 'string') {
      return routesOf(layer.handle.stack, prefix + layer.rawPath.replace(/\/$/, ''));
    }
    return [];
  });
}

/** Express 5 path syntax (`:name`, `*name`, `{*name}`) as an OpenAPI template (`{name}`). */
function toTemplate(path: string): string {
  return path.replace(/\{\*(\w+)\}/g, '{$1}').replace(/[:*](\w+)/g, '{$1}');
}

/** Whether a documented path is the one an app route serves. */
function serves(route: AppRoute, documented: string): boolean {
  if (typeof route.path === 'string') return route.prefix + toTemplate(route.path) === documented;
  if (!documented.startsWith(route.prefix + '/')) return false;
  const example = documented.slice(route.prefix.length).replace(/\{\w+\}/g, 'x');
  return route.path.test(example);
}

interface MetricFamily {
  type: string;
  labels: Set<string>;
}

/** The metric families of a Prometheus text exposition: type, and the label names of its samples. */
function metricFamilies(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(name, { type, labels: new Set() });
  for (const [, name, labels] of text.matchAll(/^([a-z_:]+)\{([^}]*)\} /gm)) {
    const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
    for (const [, label] of labels.matchAll(/(\w+)="/g)) if (label !== 'le') family?.labels.add(label);
  }
  return families;
}

/** The metric table of a deployment guide: name, type and the backticked label names of each row. */
function documentedMetrics(markdown: string): Map<string, MetricFamily> {
  const documented = new Map<string, MetricFamily>();
  for (const [name, type, labels] of tableRows(markdown)) {
    const metric = /^`([a-z_]+)`$/.exec(name)?.[1];
    if (metric) documented.set(metric, { type, labels: new Set([...labels.matchAll(/`(\w+)`/g)].map((m) => m[1])) });
  }
  return documented;
}

// The guides this test keeps true (reliability.md and the bench's reports have owners of their
// own), and the files `npm run bench -- --report` writes, which a link may name before they exist.
const GUIDES = ['README.md', ...['docs', 'docs/zh'].flatMap((dir) => fs.readdirSync(new URL(dir, root))
  .filter((file) => file.endsWith('.md')).map((file) => `${dir}/${file}`))]
  .filter((file) => !['docs/reliability.md', 'docs/performance.md', 'docs/zh/性能对比报告.md', 'docs/zh/可靠性.md'].includes(file));
const WRITTEN_BY_THE_BENCH = ['docs/performance.md', 'docs/zh/性能对比报告.md'];

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchorOf(heading: string): string {
  return heading.replace(/`/g, '').toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

function anchorsOf(markdown: string): Set<string> {
  const outsideCode = markdown.replace(/^```[\s\S]*?^```/gm, '');
  return new Set([...outsideCode.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1].trim())));
}

/** Relative links of a guide that lead nowhere: a missing file, or a missing heading. */
function brokenLinks(guide: string): string[] {
  const markdown = read(guide);
  const broken: string[] = [];
  for (const [, target] of markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/.test(target)) continue;
    const [file, anchor] = target.split('#');
    const resolved = file ? path.posix.normalize(path.posix.join(path.posix.dirname(guide), decodeURIComponent(file))) : guide;
    if (WRITTEN_BY_THE_BENCH.includes(resolved)) continue;
    if (!fs.existsSync(new URL(resolved, root))) {
      broken.push(`${target}: no file ${resolved}`);
    } else if (anchor && resolved.endsWith('.md') && !anchorsOf(read(resolved)).has(decodeURIComponent(anchor))) {
      broken.push(`${target}: no heading #${anchor} in ${resolved}`);
    }
  }
  return broken;
}

describe('docs stay true to the code', () => {
  describe('configuration', () => {
    const variables = variablesConfigReads();

    it('config.ts reads the variables the spec names (the recorder works)', () => {
      expect(variables).to.include.members(['PORT', 'AVATAR_SERVICE_URL', 'JWT_SECRET_KEY', 'UPSTREAM_TIMEOUT_MS', 'CORS_ORIGINS']);
    });

    it('.env.example\'s values are config.ts\'s defaults (but the JWT_SECRET_KEY placeholder)', () => {
      const values = envFileValues(read('.env.example')).filter(([name]) => name !== 'JWT_SECRET_KEY');
      expect(values.length).to.be.greaterThan(30);
      expect(wrongDefaults(values)).to.deep.equal([]);
    });

    it('.env.example lists every variable config.ts reads, and no other', () => {
      const listed = envFileVariables(read('.env.example'));
      expect(missingFrom(listed, variables), 'missing from .env.example').to.deep.equal([]);
      expect(missingFrom(variables, listed), 'in .env.example but never read').to.deep.equal([]);
    });

    for (const readme of ['README.md', 'docs/zh/README.md']) {
      it(`${readme}'s configuration table lists every variable config.ts reads, and no other`, () => {
        expect(fs.existsSync(new URL(readme, root)), `${readme} exists`).to.equal(true);
        const listed = tableVariables(read(readme));
        expect(missingFrom(listed, variables), `missing from ${readme}'s table`).to.deep.equal([]);
        expect(missingFrom(variables, listed), `in ${readme}'s table but never read`).to.deep.equal([]);
      });
    }

    for (const [readme, noValue] of [['README.md', /^(unset|required\b)/], ['docs/zh/README.md', /^(未设置|必填)/]] as const) {
      it(`${readme}'s configuration table gives config.ts's true default of each variable`, () => {
        const { values, unreadable } = tableDefaults(read(readme), noValue);
        expect(unreadable, 'defaults that are neither a value nor unset/required').to.deep.equal([]);
        expect(values.length).to.be.greaterThan(30);
        expect(wrongDefaults(values)).to.deep.equal([]);
      });
    }

    it('the default check sees a wrong default', () => {
      expect(wrongDefaults([['UPSTREAM_TIMEOUT_MS', '5000'], ['WORKERS', '1'], ['CORS_ORIGINS', 'http://localhost:3000']]))
        .to.deep.equal(['UPSTREAM_TIMEOUT_MS=5000', 'CORS_ORIGINS=http://localhost:3000']);
    });
  });

  describe('links', () => {
    it('finds the guides, and a broken link', () => {
      expect(GUIDES).to.include.members(['README.md', 'docs/migration.md', 'docs/zh/README.md', 'docs/zh/故障排查.md']);
      expect(anchorOf('1.2 `run.py` and `atexit` → `server.ts` and graceful shutdown')).to.equal('12-runpy-and-atexit--serverts-and-graceful-shutdown');
      expect(anchorOf('6. 容量规划：worker、连接池、舱壁')).to.equal('6-容量规划worker连接池舱壁');
    });

    for (const guide of GUIDES) {
      it(`${guide}: every relative link leads to a file and heading that exist`, () => {
        expect(brokenLinks(guide)).to.deep.equal([]);
      });
    }
  });

  describe('metrics', () => {
    let gw: TestGateway;
    let families: Map<string, MetricFamily>;

    before(async () => {
      gw = await startTestGateway();
      await send(`${gw.url}/api/ping`);
      // The start-up probe of the (unreachable) upstreams gives the upstream metrics their labels.
      let text = '';
      await waitFor(async () => (text = (await send(`${gw.url}/metrics`)).body).includes('upstream_requests_total{'), 'the start-up probe in /metrics');
      families = metricFamilies(text);
    });
    after(() => gw.close());

    for (const guide of ['docs/deployment.md', 'docs/zh/部署指南.md']) {
      it(`${guide}'s metric table is the gateway's own metrics, with their types and labels`, () => {
        const documented = documentedMetrics(read(guide));
        // prom-client's default process metrics are one row of their own (process_*, nodejs_*).
        const own = [...families.keys()].filter((name) => !/^(process|nodejs)_/.test(name));
        expect(own.length).to.be.greaterThan(8);
        expect([...documented.keys()].sort()).to.deep.equal(own.sort());
        for (const name of own) {
          const { type, labels } = families.get(name)!;
          expect(documented.get(name)!.type, `${name}'s type`).to.equal(type);
          if (labels.size > 0) expect([...documented.get(name)!.labels].sort(), `${name}'s labels`).to.deep.equal([...labels].sort());
        }
      });
    }
  });

  describe('routes', () => {
    let gw: TestGateway;
    let routes: AppRoute[];
    const doc = YAML.parse(read('docs/openapi.yaml'));
    const documented = Object.keys(doc.paths);

    before(async () => {
      gw = await startTestGateway();
      const app = gw.gateway.server.listeners('request').find((listener) => 'router' in listener) as
        { router: { stack: RouterLayer[] } } | undefined;
      if (!app) throw new Error('the gateway server has no Express app among its request listeners');
      routes = routesOf(app.router.stack);
    });
    after(() => gw.close());

    it('the router walk finds the routes (health at least)', () => {
      expect(routes.filter((route) => route.prefix === '/api' && route.path === '/ping')).to.have.length(1);
    });

    it('every route of the app is in docs/openapi.yaml, with each of its methods', () => {
      const problems: string[] = [];
      for (const route of routes) {
        const where = documented.find((path) => serves(route, path));
        const name = `${route.methods.join(',') || 'ALL'} ${route.prefix}${route.path}`;
        if (!where) {
          problems.push(`${name}: no path in openapi.yaml`);
          continue;
        }
        for (const method of route.methods) {
          if (!doc.paths[where][method.toLowerCase()]) problems.push(`${name}: ${method} missing under ${where}`);
        }
      }
      expect(problems).to.deep.equal([]);
    });

    it('every path of docs/openapi.yaml is served by the app', () => {
      const ghosts = documented.filter((path) => !routes.some((route) => serves(route, path)));
      expect(ghosts).to.deep.equal([]);
    });
  });
});
