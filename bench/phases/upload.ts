// A generated video streamed through POST /api/avatar/add (tutor token), and the same bytes
// straight to the simulated service: the time of each, the gateway's peak RSS growth while it
// streams, and the sha256 of what the service received.
import { generateFile, uploadAvatar, type GeneratedFile } from '../clients/upload.js';
import type { BenchContext } from '../context.js';
import { startSampler } from '../procs/sampler.js';
import type { UploadRow } from '../results.js';

const RSS_SAMPLE_MS = 50;

async function send(ctx: BenchContext, path: UploadRow['path'], url: string, file: GeneratedFile, headers: Record<string, string>, pid?: number): Promise<UploadRow> {
  const sim = ctx.sim!;
  await sim.forget();
  const sampler = startSampler(pid, RSS_SAMPLE_MS);
  const started = Date.now();
  // Each upload creates its own avatar: the service refuses a name it already has.
  const result = await uploadAvatar(url, file, `bench_${path}_${Date.now()}`, headers, (sent) => {
    ctx.progress.update(`upload ${path}: ${(sent / 2 ** 20).toFixed(0)} of ${(file.sizeBytes / 2 ** 20).toFixed(0)} MiB, ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
  const samples = sampler.stop();
  ctx.progress.done();
  const received = (await sim.uploads()).find((upload) => upload.field === 'prompt_face');
  return {
    path,
    result,
    received,
    sha256Ok: received?.sha256 === file.sha256 && received.size === file.sizeBytes,
    rssGrowthBytes: samples.first && samples.peakRssBytes - samples.first.rssBytes,
  };
}

export async function uploadPhase(ctx: BenchContext): Promise<void> {
  const sim = ctx.sim!;
  ctx.progress.update(`upload: generating ${(ctx.options.uploadBytes / 2 ** 20).toFixed(0)} MiB and its sha256`);
  const file = generateFile(ctx.options.uploadBytes);
  const rows: UploadRow[] = [];
  ctx.results.upload = { sizeBytes: file.sizeBytes, sha256: file.sha256, rows };
  await sim.setLatency(0);
  rows.push(await send(ctx, 'direct', `${sim.url}/avatar/add`, file, {}));
  const gateway = await ctx.startGateway();
  try {
    rows.push(await send(ctx, 'gateway', `${gateway.url}/api/avatar/add`, file, { authorization: `Bearer ${ctx.tokens.tutor}` }, gateway.pid));
  } finally {
    await gateway.stop();
  }
}
