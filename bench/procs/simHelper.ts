// Child process: the simulated avatar service, steered by the bench over IPC. It runs apart from
// the bench's load generator so the two do not share an event loop.
// argv: <latencyMs> <keepAliveTimeoutMs>
import { startAvatarService } from '../../sim/avatarService.js';
import type { RecordedFile } from '../../sim/types.js';

type Command =
  | { id: number; type: 'latency'; ms: number }
  | { id: number; type: 'uploads' }
  | { id: number; type: 'forget' };

const [latencyMs, keepAliveTimeoutMs] = process.argv.slice(2).map(Number);
const sim = await startAvatarService({ host: '127.0.0.1', port: 0, latencyMs, keepAliveTimeoutMs });

// The service records every request; a throughput run sends millions, so only recent ones are kept.
const KEEP = 100;
setInterval(() => {
  if (sim.requests.length > 10 * KEEP) sim.requests.splice(0, sim.requests.length - KEEP);
}, 1000).unref();

function answer(command: Command): unknown {
  switch (command.type) {
    case 'latency':
      sim.setLatency(command.ms);
      return true;
    case 'uploads':
      return sim.requests.flatMap((request): RecordedFile[] => request.files);
    case 'forget':
      sim.requests.length = 0;
      return true;
  }
}

process.on('message', (command: Command) => process.send!({ id: command.id, result: answer(command) }));
process.on('disconnect', () => void sim.close().finally(() => process.exit(0)));
process.on('SIGTERM', () => void sim.close().finally(() => process.exit(0)));
process.send!({ url: sim.url });
