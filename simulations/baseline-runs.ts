// The two reference points of every sweep, trained with the institutions' own training code
// (client-sdk/local-trainer.ts) and the plan's training flags, without DP:
// - `local`: each institution alone on its training rows, for as many optimiser steps as it takes in the
//   federation (rounds × local steps), scored on the common test rows and on its own held-out rows;
// - `centralised`: all institutions' training rows pooled, for as many steps as the whole federation
//   takes (rounds × local steps × institutions), scored on the common test rows: the upper reference.
// Both start from the federation's initial model (seeded from the setting's seed).
import { LocalTrainer, type TrainingConfig } from '@dpfed/client/local-trainer';
import type { Dataset } from '@dpfed/client/csv-dataset';
import { flattenParameters, initialParameters, parseModelSpec } from '@dpfed/proto/model-spec';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import type { SimJob } from './sim-grid.ts';
import type { SimData } from './sim-data.ts';
import { rowsFingerprint, type Partition } from './sim-partition.ts';
import type { SimRecord } from './sim-result.ts';
import { simRunConfig } from './sim-run-config.ts';
import { scoreModel } from './sim-scoring.ts';

type Tf = typeof import('@dpfed/client/tfjs');

export interface BaselineOptions {
  tf: Tf;
  job: SimJob;
  data: SimData;
  partition: Partition;
}

function trainAlone(trainer: LocalTrainer, initial: Float32Array, rows: Dataset, config: TrainingConfig): Float32Array {
  return trainer.train(initial, rows, { config }).params;
}

export function runBaseline(o: BaselineOptions): SimRecord[] {
  const { job, partition } = o;
  const s = job.setting;
  const institutions = partition.institutions.length;
  const config = simRunConfig(job, { features: o.data.dim, schema: o.data.schema, institutions });
  const spec = parseModelSpec(config.modelSpec);
  const initial = flattenParameters(spec, initialParameters(spec, new SeededRandom(`${config.seed}:init`)));
  const training: TrainingConfig = { ...config.task, proximalMu: 0, seed: config.seed, privacy: { mode: 'off' } };
  const trainer = new LocalTrainer(o.tf, spec, { noiseWorker: false });
  const base = { settingId: job.id, ...s, aucPerRound: [], epsilonSpent: {}, epsilonPerRound: {} };
  try {
    if (s.baseline === 'centralised') {
      const started = performance.now();
      const params = trainAlone(trainer, initial, partition.pooledTrain, { ...training, localSteps: config.task.localSteps * s.rounds * institutions });
      const scores = scoreModel(trainer, params, partition.test);
      return [{ ...base, institution: null, scoredOn: 'test', ...scores, seconds: (performance.now() - started) / 1000, scoredRows: partition.testFingerprint }];
    }
    if (s.baseline !== 'local') throw new Error(`runBaseline: "${s.baseline}" is not a baseline`);
    const rows: SimRecord[] = [];
    for (const institution of partition.institutions) {
      const started = performance.now();
      const params = trainAlone(trainer, initial, institution.train, { ...training, localSteps: config.task.localSteps * s.rounds });
      const onTest = scoreModel(trainer, params, partition.test);
      const onOwn = scoreModel(trainer, params, institution.own);
      const seconds = (performance.now() - started) / 1000;
      rows.push({ ...base, institution: institution.id, scoredOn: 'test', ...onTest, seconds, scoredRows: partition.testFingerprint });
      rows.push({ ...base, institution: institution.id, scoredOn: 'own', ...onOwn, seconds, scoredRows: rowsFingerprint(institution.own) });
    }
    return rows;
  } finally {
    trainer.dispose();
  }
}
