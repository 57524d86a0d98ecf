// Command-line options of `npm run bench`, with the full run's defaults and --quick's smaller ones.
import { parseArgs } from 'node:util';

export const PHASES = ['burst', 'throughput', 'upload', 'soak'] as const;
export type PhaseName = (typeof PHASES)[number];

export interface BenchOptions {
  phases: PhaseName[];
  /** Burst sizes: simultaneous users, each one request. */
  users: number[];
  /** The simulated avatar service's time per call in the burst. */
  latencyMs: number;
  /** "before" (a pool of one) is serial: larger bursts would take users x latency; they are skipped. */
  beforeMaxUsers: number;
  connections: number;
  durationS: number;
  uploadBytes: number;
  soakSeconds: number;
  soakRate: number;
  /** A running deployment to measure instead of a gateway started here. */
  target?: { url: string; token: string };
  /** Extra variables for the gateway under test ("after"), e.g. UPSTREAM_IDLE_SOCKET_MS=3000. */
  gatewayEnv: Record<string, string>;
  /** Where the gateway writes a V8 CPU profile of each of its runs (node --cpu-prof). */
  profileDir?: string;
  report: boolean;
  quick: boolean;
}

export const USAGE = `npm run bench -- [options]

  --quick                 a small version of every phase (CI smoke)
  --report                write docs/performance.md and docs/zh/性能对比报告.md from this run
  --phases LIST           burst,throughput,upload,soak (default: burst,throughput,upload; soak with --soak)
  --users LIST            burst sizes (default 1,2,5,10,20,100,1000,5000)
  --latency MS            upstream time per call in the burst (default 3000)
  --before-max-users N    largest burst run "before" (pool of one: serial) (default 20)
  --connections N         autocannon connections (default 64)
  --duration S            autocannon seconds per run (default 10)
  --upload-mib N          upload size in MiB (default 1024)
  --soak S                run the soak phase for S seconds
  --soak-rate N           soak requests per second (default 200)
  --target URL --token T  measure a running deployment (burst, throughput, soak) instead
  --gateway-env K=V       extra variable for the gateway under test (repeatable)
  --profile DIR           the gateway writes a CPU profile per run into DIR (open in Chrome DevTools)
  --help`;

const FULL = { users: [1, 2, 5, 10, 20, 100, 1000, 5000], latencyMs: 3000, beforeMaxUsers: 20, connections: 64, durationS: 10, uploadMib: 1024 };
const QUICK = { users: [1, 2, 5, 10], latencyMs: 200, beforeMaxUsers: 10, connections: 16, durationS: 2, uploadMib: 32 };

export class UsageError extends Error {}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name}: expected a number, got "${value}"`);
  return n;
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      report: { type: 'boolean', default: false },
      phases: { type: 'string' },
      users: { type: 'string' },
      latency: { type: 'string' },
      'before-max-users': { type: 'string' },
      connections: { type: 'string' },
      duration: { type: 'string' },
      'upload-mib': { type: 'string' },
      soak: { type: 'string' },
      'soak-rate': { type: 'string' },
      target: { type: 'string' },
      token: { type: 'string' },
      'gateway-env': { type: 'string', multiple: true },
      profile: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  const base = values.quick ? QUICK : FULL;
  const soakSeconds = positive('soak', values.soak, 0);

  let phases: PhaseName[] = values.phases
    ? values.phases.split(',').map((name) => {
      if (!(PHASES as readonly string[]).includes(name)) throw new UsageError(`--phases: unknown phase "${name}" (${PHASES.join(', ')})`);
      return name as PhaseName;
    })
    : ['burst', 'throughput', 'upload', ...(soakSeconds > 0 ? ['soak' as const] : [])];
  if (phases.includes('soak') && soakSeconds === 0) throw new UsageError('the soak phase needs --soak SECONDS');

  let target: BenchOptions['target'];
  if (values.target !== undefined || values.token !== undefined) {
    if (!values.target || !values.token) throw new UsageError('--target and --token go together');
    target = { url: values.target.replace(/\/$/, ''), token: values.token };
    if (phases.includes('upload')) {
      if (values.phases) throw new UsageError('--target: the upload phase would create a 1 GiB avatar on a real service; leave it out');
      phases = phases.filter((phase) => phase !== 'upload');
    }
  }

  const gatewayEnv: Record<string, string> = {};
  for (const pair of values['gateway-env'] ?? []) {
    const at = pair.indexOf('=');
    if (at < 1) throw new UsageError(`--gateway-env: expected NAME=VALUE, got "${pair}"`);
    gatewayEnv[pair.slice(0, at)] = pair.slice(at + 1);
  }

  return {
    phases,
    users: values.users ? values.users.split(',').map((n) => positive('users', n, 1)) : base.users,
    latencyMs: positive('latency', values.latency, base.latencyMs),
    beforeMaxUsers: positive('before-max-users', values['before-max-users'], base.beforeMaxUsers),
    connections: positive('connections', values.connections, base.connections),
    durationS: positive('duration', values.duration, base.durationS),
    uploadBytes: positive('upload-mib', values['upload-mib'], base.uploadMib) * 1024 * 1024,
    soakSeconds,
    soakRate: positive('soak-rate', values['soak-rate'], 200),
    target,
    gatewayEnv,
    profileDir: values.profile,
    report: values.report,
    quick: values.quick,
  };
}
