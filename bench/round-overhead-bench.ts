// Round overhead: the time a round takes when local training costs nothing. 10 institutions in this
// process on loopback gRPC, each with a learner that returns global + a tiny delta at once and a fixed
// score histogram; privacy off, plain aggregation, FedAvg. What is left is the protocol: posting tasks,
// model downloads, result uploads and their validation, aggregation, the evaluation phase and the SQLite
// commit. The figure is the median RoundSummary.seconds (sampling → commit), the first round skipped.
// The clients' side of the wire (decoding downloads, encoding uploads) runs in the same process and is
// included.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags } from '../cli/flags.ts';
import { runConfigFromFlags, runFlags } from '../cli/run-flags.ts';
import { FederationClient } from '../client-sdk/federation-client.ts';
import type { EvalOutcome, Learner, TaskContext, TrainOutcome } from '../client-sdk/learner.ts';
import { startCoordinator } from '../coordinator/coordinator-server.ts';
import { coordinatorPrivacy } from '../coordinator/ledger-privacy.ts';
import type { RoundSummary } from '../coordinator/round-machine.ts';
import { emptyHistogram } from '../privacy/auc-histogram.ts';
import { generateIdentity } from '../privacy/identity.ts';
import { parameterCount } from '../proto/model-spec.ts';
import { median, roundTo } from './statistics.ts';

/** Returns global + a tiny delta at once, and a fixed histogram: the round does no learning work. */
class NoTrainingLearner implements Learner {
  readonly numTrainExamples = 1000;

  async train(global: Float32Array, _task: TaskContext): Promise<TrainOutcome> {
    const params = new Float32Array(global.length);
    for (let i = 0; i < global.length; i++) params[i] = global[i] + 1e-4;
    return { params, numExamples: this.numTrainExamples, metrics: { loss: 0.1 } };
  }

  async evaluate(_model: Float32Array, task: TaskContext): Promise<EvalOutcome> {
    const { bins, logitRange } = task.config.evaluation;
    const histogram = emptyHistogram(bins, logitRange);
    histogram.positive[Math.floor(bins * 0.7)] = 10;
    histogram.negative[Math.floor(bins * 0.3)] = 190;
    return { histogram, numExamples: 200, loss: 0.1, accuracy: 0.95 };
  }
}

export interface RoundOverheadRun {
  parameters: number;
  clients: number;
  /** RoundSummary.seconds of every round, in ms. */
  roundMs: number[];
  medianMs: number;
}

/** One federation of `clients` no-training institutions for `rounds` rounds; median round time without the first. */
export async function measureRoundOverhead(o: { model: string; clients: number; rounds: number }): Promise<RoundOverheadRun> {
  const dir = mkdtempSync(join(tmpdir(), 'dpfed-round-bench-'));
  const flags = runFlags({ rounds: o.rounds, minClients: o.clients, privacy: 'off', aggregation: 'plain' });
  const config = runConfigFromFlags(parseFlags({ name: 'bench', summary: '', flags }, ['--model', o.model, '--features', '30', '--strategy', 'fedavg', '--round-timeout', '60', '--phase-timeout', '60']));
  const coordinator = await startCoordinator({ dbPath: join(dir, 'bench.sqlite'), config, privacy: coordinatorPrivacy });
  const summaries: RoundSummary[] = [];
  coordinator.machine.on('round', (s: RoundSummary) => summaries.push(s));
  const clients = Array.from({ length: o.clients }, (_, k) => new FederationClient({
    coordinator: `127.0.0.1:${coordinator.port}`,
    institutionId: `bank-${k + 1}`,
    identity: generateIdentity(),
    learner: new NoTrainingLearner(),
  }));
  try {
    await Promise.all(clients.map((c) => c.run()));
    await coordinator.finished;
  } finally {
    for (const c of clients) c.close();
    await coordinator.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (summaries.length !== o.rounds) throw new Error(`round-overhead bench: ${summaries.length} of ${o.rounds} rounds committed`);
  const roundMs = summaries.map((s) => s.seconds * 1000);
  return { parameters: parameterCount(config.modelSpec), clients: o.clients, roundMs, medianMs: median(roundMs.slice(1)) };
}

/** ~100k parameters (30-256-256-100-1: 99,529) and ~1M (30-1024-940-1: 996,185). */
export const MODEL_100K = 'mlp:256,256,100';
export const MODEL_1M = 'mlp:1024,940';

export async function benchRoundOverhead(o: { quick?: boolean } = {}): Promise<{ roundOverheadMs: number; roundOverheadMs1M: number; roundOverheadClients: number }> {
  const clients = 10;
  const small = await measureRoundOverhead({ model: MODEL_100K, clients, rounds: o.quick ? 6 : 21 });
  const large = await measureRoundOverhead({ model: MODEL_1M, clients, rounds: o.quick ? 4 : 11 });
  return { roundOverheadMs: roundTo(small.medianMs, 2), roundOverheadMs1M: roundTo(large.medianMs, 2), roundOverheadClients: clients };
}
