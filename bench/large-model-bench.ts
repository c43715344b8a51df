// A 600 MB model through one federated round over loopback gRPC: the message cap is never raised
// (chunks of at most 4 MiB), and the peak memory shows how many full copies each side holds.
// One coordinator and one institution in this process, a learner that adds a constant, plain FedAvg.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags } from '@dpfed/proto/command-flags';
import { runConfigFromFlags, runFlags } from '@dpfed/coordinator/run-flags';
import { FederationClient } from '@dpfed/client/federation-client';
import type { EvalOutcome, Learner, TaskContext, TrainOutcome } from '@dpfed/client/learner';
import { startCoordinator } from '@dpfed/coordinator/coordinator-server';
import { emptyHistogram } from '@dpfed/privacy/auc-histogram';
import { generateIdentity } from '@dpfed/privacy/identity';
import { parameterCount } from '@dpfed/proto/model-spec';
import { MAX_MESSAGE_BYTES } from '@dpfed/proto/wire';
import { roundTo } from './statistics.ts';

class ConstantShiftLearner implements Learner {
  readonly numTrainExamples = 100;

  async train(global: Float32Array): Promise<TrainOutcome> {
    const params = new Float32Array(global.length);
    for (let i = 0; i < global.length; i++) params[i] = global[i] + 1e-3;
    return { params, numExamples: this.numTrainExamples, metrics: {} };
  }

  async evaluate(_model: Float32Array, task: TaskContext): Promise<EvalOutcome> {
    const histogram = emptyHistogram(task.config.evaluation.bins, task.config.evaluation.logitRange);
    histogram.positive[900] = 1;
    histogram.negative[100] = 1;
    return { histogram, numExamples: 2, loss: 0.1, accuracy: 1 };
  }
}

export async function benchLargeModel(o: { units?: number } = {}): Promise<Record<string, number>> {
  const units = o.units ?? 12288; // 30 → 12288 → 12288 → 1 is too wide for a demo; a single 12288×12288 layer is 604 MB
  const dir = mkdtempSync(join(tmpdir(), 'dpfed-large-'));
  const flags = runFlags({ rounds: 1, minClients: 1, privacy: 'off', aggregation: 'plain' });
  const config = runConfigFromFlags(parseFlags({ name: 'bench', summary: '', flags }, ['--model', `mlp:${units}`, '--features', String(units), '--round-timeout', '600', '--phase-timeout', '600']));
  const parameters = parameterCount(config.modelSpec);
  const modelMB = (parameters * 4) / 2 ** 20;
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  sampler.unref();
  const t0 = performance.now();
  let coordinator: Awaited<ReturnType<typeof startCoordinator>> | undefined;
  let client: FederationClient | undefined;
  let roundSeconds = Number.NaN;
  let tStarted = t0;
  try {
    const identity = generateIdentity();
    coordinator = await startCoordinator({ dbPath: join(dir, 'large.sqlite'), keyDir: join(dir, 'keys'), config, insecure: true, enrol: [{ institutionId: 'bank-1', publicKey: identity.publicKey }] });
    tStarted = performance.now();
    coordinator.machine.on('round', (s: { seconds: number }) => (roundSeconds = s.seconds));
    client = new FederationClient({ coordinator: `127.0.0.1:${coordinator.port}`, institutionId: 'bank-1', identity, learner: new ConstantShiftLearner(), insecure: true });
    await client.run();
    await coordinator.finished;
    const committed = coordinator.store.model(coordinator.runId, 1)!.parameters;
    const initial = coordinator.store.model(coordinator.runId, 0)!.parameters;
    const probe = [0, Math.floor(parameters / 2), parameters - 1];
    for (const i of probe) {
      if (Math.abs(committed[i] - initial[i] - 1e-3) > 1e-6) throw new Error(`large-model bench: parameter ${i} is wrong after the round`);
    }
  } finally {
    clearInterval(sampler);
    client?.close();
    await coordinator?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    largeModelMB: roundTo(modelMB, 1),
    largeModelMaxMessageMB: roundTo(MAX_MESSAGE_BYTES / 2 ** 20, 3),
    largeModelSetupSeconds: roundTo((tStarted - t0) / 1000, 2),
    largeModelRoundSeconds: roundTo(roundSeconds, 2),
    /** Peak memory above the start, in model sizes, for coordinator and institution together in one process. */
    largeModelPeakCopies: roundTo((peak - baseline) / (parameters * 4), 2),
  };
}
