// A round's context built from the real pieces a RoundMachine would hand its collections (task board,
// served models and task messages, envelope checks, release policy, pools), without a coordinator or a
// transport: for unit tests of the round's collections.
import { checkRound, checkRun } from '@dpfed/coordinator/envelope-checks';
import type { Institution } from '@dpfed/coordinator/institution-registry';
import type { RoundContext } from '@dpfed/coordinator/round-collection';
import { RoundModels } from '@dpfed/coordinator/round-models';
import type { RoundPrivacy } from '@dpfed/coordinator/round-privacy';
import { RoundTasks } from '@dpfed/coordinator/round-tasks';
import type { RunConfig } from '@dpfed/coordinator/run-config';
import { TaskBoard } from '@dpfed/coordinator/task-board';
import { VectorPool } from '@dpfed/coordinator/vector-pool';
import { WeightedSumBuffer } from '@dpfed/coordinator/weighted-sum';
import { trainingReleasePolicy } from '@dpfed/privacy/release-policy';
import { parameterShapes } from '@dpfed/proto/model-spec';

/** A run of a logistic model over 3 features (4 parameters), privacy off, plain aggregation, by default. */
export function testRunConfig(over: Partial<RunConfig> = {}, task: Partial<RunConfig['task']> = {}): RunConfig {
  return {
    rounds: 3,
    minClients: 2,
    sampleFraction: 1,
    sampleCount: 0,
    roundTimeoutMs: 5_000,
    phaseTimeoutMs: 5_000,
    strategy: 'fedavg',
    strategyOptions: {},
    modelSpec: { kind: 'logistic', inputDim: 3, hidden: [] },
    seed: 'unit',
    secaggThresholdFraction: 0.5,
    secaggDropoutRate: 0.2,
    ...over,
    task: {
      localSteps: 1,
      maxUpdateNorm: 10,
      weightCap: 1000,
      batchSize: 8,
      learningRate: 0.1,
      optimizer: 'sgd',
      weighting: 'examples',
      privacy: { mode: 'off' },
      aggregation: 'plain',
      evaluation: { bins: 4, logitRange: 4 },
      ...task,
    },
  };
}

export function testInstitution(id: string, declaredExamples: number | null = null): Institution {
  return { id, publicKey: new Uint8Array(32), session: Buffer.alloc(0), budget: null, declaredExamples, lastSeen: Date.now(), excludedReason: null, unresponsive: null };
}

/** Round `round` of run "run-1", trained from the model of version round − 1 (all zeros). */
export function testRoundContext(o: { config: RunConfig; participants: Institution[]; round?: number; privacy?: RoundPrivacy }): RoundContext {
  const round = o.round ?? 1;
  const spec = o.config.modelSpec;
  const shapes = parameterShapes(spec).map((p) => ({ ...p, size: p.shape.reduce((a, b) => a * b, 1) }));
  const length = shapes.reduce((n, p) => n + p.size, 0);
  const models = new RoundModels(spec, shapes, new Float32Array(length), round - 1);
  const tasks = new RoundTasks('run-1', o.config, models);
  const policy = trainingReleasePolicy(o.config.task);
  return {
    runId: 'run-1',
    round,
    modelVersion: models.version,
    global: models.global,
    shapes,
    participants: o.participants,
    weights: new Map(o.participants.map((p) => [p.id, policy.weightOf(p.declaredExamples)])),
    config: o.config,
    policy,
    privacy: o.privacy,
    board: new TaskBoard(),
    institution: (id) => o.participants.find((p) => p.id === id),
    resources: { updateVectors: new VectorPool(), arrivalBuffer: new WeightedSumBuffer(), ckksKey: null },
    task: (kind, modelVersion) => tasks.task(kind, round, { config: { ...o.config.task, strategy: 'fedavg', proximalMu: 0, seed: `unit:${round}` }, modelVersion }),
    checkRun: (envelope) => checkRun(envelope, 'run-1'),
    checkRound: (envelope, modelVersion) => checkRound(envelope, { runId: 'run-1', round }, modelVersion),
  };
}
