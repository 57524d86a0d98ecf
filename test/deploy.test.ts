// The deployment files agree with each other and with config.ts: ports, probe paths, signals and
// grace periods; the manifests also match the Kubernetes API's own schemas (kubernetes-models bundles
// them, so this runs offline). Docker and a cluster do not run here, so these are read and checked,
// not run.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig, type Config } from '../config.js';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const k8sDir = path.join(root, 'deploy', 'k8s');
const defaults: Config = loadConfig({ JWT_SECRET_KEY: 'x' });

type Manifest = Record<string, any>;

function readManifests(): Array<{ file: string; doc: Manifest }> {
  return fs.readdirSync(k8sDir)
    .filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
    .flatMap((file) => parseAllDocuments(fs.readFileSync(path.join(k8sDir, file), 'utf8')).map((document) => {
      expect(document.errors, file).to.deep.equal([]);
      return { file, doc: document.toJSON() as Manifest };
    }));
}

interface KubernetesModel {
  validate(): void;
}

/** The kubernetes-models class of a manifest's apiVersion and kind, e.g. kubernetes-models/apps/v1/Deployment. */
async function kubernetesModel(apiVersion: string, kind: string): Promise<new (data: Manifest) => KubernetesModel> {
  const module = await import(`kubernetes-models/${apiVersion}/${kind}`);
  return module[kind];
}

/** The schema problems of a manifest, empty when it is valid. */
async function schemaProblems(doc: Manifest): Promise<string[]> {
  const Model = await kubernetesModel(doc.apiVersion, doc.kind);
  try {
    new Model(doc).validate();
    return [];
  } catch (error) {
    return [(error as Error).message];
  }
}

/** "2100m" (ingress-nginx's size syntax) in bytes. */
function nginxSize(size: string): number {
  const match = /^(\d+)([kmg]?)$/i.exec(size);
  expect(match, `size "${size}"`).not.to.equal(null);
  return Number(match![1]) * 1024 ** ' kmg'.indexOf((match![2] || ' ').toLowerCase());
}

describe('deploy/k8s manifests', () => {
  const manifests = readManifests();
  const one = (kind: string, name?: string): Manifest => {
    const found = manifests.filter(({ doc }) => doc.kind === kind && (name === undefined || doc.metadata.name === name));
    expect(found, `${kind} ${name ?? ''}`).to.have.length(1);
    return found[0].doc;
  };
  const deployment = one('Deployment');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const configMap = one('ConfigMap', container.envFrom.find((from: Manifest) => from.configMapRef).configMapRef.name);
  const secret = one('Secret', container.envFrom.find((from: Manifest) => from.secretRef).secretRef.name);
  // What the pod's process reads: the ConfigMap and the Secret as its environment.
  const podConfig = loadConfig({ ...configMap.data, ...secret.stringData });

  it('every document is a named Kubernetes object, and kustomization.yaml lists every file', () => {
    for (const { file, doc } of manifests) {
      expect(doc.apiVersion, file).to.be.a('string');
      expect(doc.kind, file).to.be.a('string');
      expect(doc.metadata?.name, file).to.be.a('string');
    }
    const kustomization = parse(fs.readFileSync(path.join(k8sDir, 'kustomization.yaml'), 'utf8'));
    expect([...kustomization.resources].sort()).to.deep.equal([...new Set(manifests.map(({ file }) => file))].sort());
    for (const kind of ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Ingress', 'ConfigMap', 'Secret']) {
      expect(manifests.some(({ doc }) => doc.kind === kind), kind).to.equal(true);
    }
  });

  it('every manifest is valid against the Kubernetes API schema of its apiVersion and kind', async () => {
    const problems: string[] = [];
    for (const { file, doc } of manifests) {
      for (const problem of await schemaProblems(doc)) problems.push(`${file} (${doc.kind} ${doc.metadata.name}): ${problem}`);
    }
    expect(problems).to.deep.equal([]);
  });

  it('the schema check refuses a broken manifest (a probe without its port, a replica count as text)', async () => {
    const broken = structuredClone(deployment);
    delete broken.spec.template.spec.containers[0].readinessProbe.httpGet.port;
    broken.spec.replicas = 'two';
    const problems = (await schemaProblems(broken)).join('\n');
    expect(problems).to.include('containers/0/readinessProbe/httpGet must have required property port');
    expect(problems).to.include('spec/replicas must be integer');
  });

  it('the container listens on config.ts\'s port, as the ConfigMap says', () => {
    expect(container.ports).to.deep.include({ name: 'http', containerPort: defaults.port, protocol: 'TCP' });
    expect(podConfig.port).to.equal(defaults.port);
    expect(podConfig.host).to.equal('0.0.0.0');
  });

  it('keeps the JWT secret in the Secret, never in the ConfigMap', () => {
    expect(secret.stringData).to.have.property('JWT_SECRET_KEY');
    expect(configMap.data).not.to.have.property('JWT_SECRET_KEY');
    expect(configMap.data).not.to.have.property('METRICS_TOKEN');
  });

  it('probes readiness on /api/health and liveness on /api/ping, on the http port', () => {
    expect(container.readinessProbe.httpGet).to.deep.equal({ path: '/api/health', port: 'http' });
    expect(container.livenessProbe.httpGet).to.deep.equal({ path: '/api/ping', port: 'http' });
  });

  it('pauses before SIGTERM and grants more grace than the pause plus SHUTDOWN_TIMEOUT_MS', () => {
    const command: string[] = container.lifecycle.preStop.exec.command;
    expect(command[0]).to.equal('sleep');
    const pauseSeconds = Number(command[1]);
    expect(pauseSeconds).to.be.at.least(3);
    expect(podConfig.server.shutdownTimeoutMs).to.equal(defaults.server.shutdownTimeoutMs);
    expect(pod.terminationGracePeriodSeconds * 1000).to.be.greaterThan(pauseSeconds * 1000 + podConfig.server.shutdownTimeoutMs);
  });

  it('runs as a non-root user with resource requests and limits', () => {
    expect(pod.securityContext.runAsNonRoot).to.equal(true);
    expect(pod.securityContext.runAsUser).to.be.greaterThan(0);
    expect(container.resources.requests).to.have.keys('cpu', 'memory');
    expect(container.resources.limits).to.have.keys('cpu', 'memory');
    // Logs and temporary files go to writable volumes on a read-only root.
    expect(container.volumeMounts.map((mount: Manifest) => mount.mountPath)).to.include(podConfig.log.dir);
  });

  it('points the Service, the autoscaler, the budget and the ingresses at the Deployment\'s pods', () => {
    const podLabels = deployment.spec.template.metadata.labels;
    expect(deployment.spec.selector.matchLabels).to.deep.equal(podLabels);
    const service = one('Service');
    expect(podLabels).to.deep.include(service.spec.selector);
    expect(service.spec.ports[0].targetPort).to.equal('http');
    const hpa = one('HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef).to.deep.include({ kind: 'Deployment', name: deployment.metadata.name });
    expect(hpa.spec.minReplicas).to.be.at.least(2);
    expect(podLabels).to.deep.include(one('PodDisruptionBudget').spec.selector.matchLabels);
    for (const { doc } of manifests.filter(({ doc }) => doc.kind === 'Ingress')) {
      for (const rule of doc.spec.rules) {
        for (const { backend } of rule.http.paths) {
          expect(backend.service).to.deep.equal({ name: service.metadata.name, port: { name: 'http' } });
        }
      }
    }
  });

  it('routes the avatar paths to the gateway and nothing else (Flask keeps its login and other /api routes on the host)', () => {
    const routed = manifests.filter(({ doc }) => doc.kind === 'Ingress')
      .flatMap(({ doc }) => doc.spec.rules.flatMap((rule: Manifest) => rule.http.paths as Manifest[]));
    // A rule for /api or / would take Flask's /api/auth/... and answer it with the gateway's 404.
    for (const { path: routedPath } of routed) expect(routedPath).to.match(/^\/api\/(avatar|tts|webrtc)(\/|$)/);
    const general = one('Ingress', 'avatar-gateway').spec.rules
      .flatMap((rule: Manifest) => rule.http.paths.map((p: Manifest) => `${p.pathType} ${p.path}`));
    expect(general.sort()).to.deep.equal(['Prefix /api/avatar', 'Prefix /api/tts', 'Prefix /api/webrtc']);

    // Every route the frontend calls (docs/openapi.yaml's avatar, tts and webrtc operations) is routed.
    const api = parse(fs.readFileSync(path.join(root, 'docs', 'openapi.yaml'), 'utf8'));
    const frontendPaths = Object.entries<Manifest>(api.paths)
      .filter(([, item]) => Object.values(item).some((op: Manifest) => op?.tags?.some((tag: string) => ['avatar', 'tts', 'webrtc'].includes(tag))))
      .map(([template]) => template.replace(/\{\w+\}/g, 'x'));
    expect(frontendPaths).to.include.members(['/api/avatar/list', '/api/avatar/add', '/api/tts/models', '/api/webrtc/x']);
    const prefixes = routed.filter((p) => p.pathType === 'Prefix').map((p) => p.path as string);
    for (const frontendPath of frontendPaths) {
      expect(prefixes.some((prefix) => frontendPath === prefix || frontendPath.startsWith(`${prefix}/`)), frontendPath).to.equal(true);
    }
  });

  it('gives /api/avatar/add an ingress with MAX_UPLOAD_BYTES of body, AVATAR_ADD_TIMEOUT_MS of time and no buffering', () => {
    const upload = manifests.map(({ doc }) => doc).find((doc) => doc.kind === 'Ingress'
      && doc.spec.rules.some((rule: Manifest) => rule.http.paths.some((p: Manifest) => p.path === '/api/avatar/add')))!;
    const annotations = upload.metadata.annotations;
    expect(nginxSize(annotations['nginx.ingress.kubernetes.io/proxy-body-size'])).to.be.greaterThan(defaults.limits.maxUploadBytes);
    expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout']) * 1000).to.be.greaterThan(defaults.timeouts.avatarAddMs);
    expect(annotations['nginx.ingress.kubernetes.io/proxy-request-buffering']).to.equal('off');
    // The other routes: longer than the longest of their upstream timeouts (start).
    const general = one('Ingress', 'avatar-gateway').metadata.annotations;
    expect(Number(general['nginx.ingress.kubernetes.io/proxy-read-timeout']) * 1000).to.be.greaterThan(defaults.timeouts.avatarStartMs);
    expect(nginxSize(general['nginx.ingress.kubernetes.io/proxy-body-size'])).to.be.greaterThan(defaults.limits.maxFormBytes);
  });
});

describe('Dockerfile', () => {
  // Continuation lines joined, comments dropped: one instruction per entry.
  const instructions = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const stages = instructions.reduce<string[][]>((all, line) => {
    if (line.startsWith('FROM ')) all.push([]);
    all.at(-1)?.push(line);
    return all;
  }, []);
  const runtime = stages.at(-1)!;
  const find = (stage: string[], keyword: string) => stage.filter((line) => line.startsWith(`${keyword} `));

  it('builds in one stage and runs a slim image with the production dependencies only', () => {
    expect(stages.length).to.be.at.least(2);
    expect(runtime[0]).to.match(/^FROM node:\S+-slim AS runtime$/);
    expect(stages[0].join('\n')).to.match(/npm ci/).and.match(/npm run build/).and.match(/npm prune --omit=dev/);
    expect(find(runtime, 'COPY').join('\n')).to.include('--from=build /app/node_modules').and.include('--from=build /app/dist');
    expect(runtime.join('\n')).not.to.match(/npm (ci|install)/);
  });

  it('runs as a non-root user, under tini, stopped by SIGTERM', () => {
    expect(find(runtime, 'USER')).to.have.length(1);
    expect(find(runtime, 'USER')[0]).not.to.match(/^USER (root|0)\b/);
    expect(find(runtime, 'STOPSIGNAL')).to.deep.equal(['STOPSIGNAL SIGTERM']);
    expect(find(runtime, 'ENTRYPOINT')).to.deep.equal(['ENTRYPOINT ["/usr/bin/tini", "--"]']);
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(find(runtime, 'CMD')).to.deep.equal([`CMD ${JSON.stringify(pkg.scripts.start.split(' '))}`.replace(/","/g, '", "')]);
  });

  it('exposes config.ts\'s port and checks /api/health', () => {
    expect(find(runtime, 'EXPOSE')).to.deep.equal([`EXPOSE ${defaults.port}`]);
    expect(runtime.join('\n')).to.match(new RegExp(`PORT=${defaults.port}\\b`));
    const healthcheck = find(runtime, 'HEALTHCHECK');
    expect(healthcheck).to.have.length(1);
    expect(healthcheck[0]).to.include('/api/health\'');
  });

  it('.dockerignore keeps secrets, dependencies and build output out of the build context', () => {
    const ignored = fs.readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['.env', 'node_modules', 'dist', '.git', 'logs']) expect(ignored).to.include(entry);
  });
});

describe('docker-compose.yml', () => {
  const compose = parse(fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'));
  const gateway = compose.services.gateway;
  const simulators = compose.services.simulators;

  it('publishes the gateway on config.ts\'s port and gives it a JWT secret', () => {
    expect(gateway.build).to.not.equal(undefined);
    expect(gateway.ports).to.include(`${defaults.port}:${defaults.port}`);
    expect(gateway.environment.JWT_SECRET_KEY).to.be.a('string').and.not.equal('');
  });

  it('points the gateway at the simulated services on the default upstream ports', () => {
    const env = loadConfig(gateway.environment);
    for (const name of ['avatar', 'tts', 'webrtc'] as const) {
      expect(env.upstreams[name].hostname, name).to.equal('simulators');
      expect(env.upstreams[name].port, name).to.equal(defaults.upstreams[name].port);
    }
    expect(simulators.command.join(' ')).to.include('dist/sim/main.js');
    expect(fs.existsSync(path.join(root, 'sim', 'main.ts'))).to.equal(true);
  });

  it('lets the gateway drain before Docker kills it', () => {
    const grace = /^(\d+)s$/.exec(gateway.stop_grace_period);
    expect(grace).not.to.equal(null);
    expect(Number(grace![1]) * 1000).to.be.greaterThan(loadConfig(gateway.environment).server.shutdownTimeoutMs);
  });
});
