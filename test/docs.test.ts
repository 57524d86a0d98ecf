// The docs stay true to the code: every variable config.ts reads is documented in .env.example and
// in the READMEs' configuration tables, and the app's routes and docs/openapi.yaml's paths are the
// same set. Both lists come from the code itself (an env object that records what loadConfig reads,
// the running app's router), so neither can drift from what the gateway really does.
import fs from 'node:fs';
import { expect } from 'chai';
import YAML from 'yaml';
import { loadConfig } from '../config.js';
import { startTestGateway, TEST_SECRET, type TestGateway } from './helpers/gateway.js';

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

describe('docs stay true to the code', () => {
  describe('configuration', () => {
    const variables = variablesConfigReads();

    it('config.ts reads the variables the spec names (the recorder works)', () => {
      expect(variables).to.include.members(['PORT', 'AVATAR_SERVICE_URL', 'JWT_SECRET_KEY', 'UPSTREAM_TIMEOUT_MS', 'CORS_ORIGINS']);
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
