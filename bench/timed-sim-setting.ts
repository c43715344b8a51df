// One federated setting of `dpfed sim` on the bundled card-fraud data (iid split, 20 % common test rows),
// run as the sim runs it (simulations/federated-run.ts) and timed: institution-rounds per wall-clock second
// and per CPU second of this process. The sim and in-memory benches measure their settings with it.
import { join } from 'node:path';
import type { SelectedBackend } from '@dpfed/client/tf-backend';
import { readSchemaFile } from '@dpfed/proto/data-schema';
import { runFederated } from '@dpfed/simulations/federated-run';
import type { TransportName } from '@dpfed/simulations/federation-transport';
import { parseSplit } from '@dpfed/simulations/institution-split';
import { loadSimCsv } from '@dpfed/simulations/sim-data';
import { expandGrid } from '@dpfed/simulations/sim-grid';
import { partitionData } from '@dpfed/simulations/sim-partition';
import { ROOT } from './bench-paths.ts';

export interface TimedSettingPlan {
  institutions: number;
  rounds: number;
  model: string;
  /** null: federated without DP; else record-level DP at this ε. */
  epsilon: number | null;
  aggregation: 'plain' | 'secagg';
  trainingArgs: string[];
}

export interface SettingTiming {
  rate: number;
  cpuRate: number;
  auc: number;
}

/** Loads the data and picks the setting once; `run(transport)` runs it again each time it is called. */
export async function timedSimSetting(tf: SelectedBackend['tf'], plan: TimedSettingPlan): Promise<{ run(transport: TransportName): Promise<SettingTiming> }> {
  const data = await loadSimCsv({
    path: join(ROOT, 'data', 'creditcard_fraud_ulb_sample.csv'),
    labelColumn: 'label',
    schema: readSchemaFile(join(ROOT, 'data', 'creditcard_fraud_ulb_sample.schema.json')),
  });
  const partition = partitionData(data, { split: parseSplit('iid'), institutions: plan.institutions, testShare: 0.2, seed: '1' });
  const { jobs } = expandGrid({
    data: 'bench',
    split: 'iid',
    institutions: [plan.institutions],
    testShare: 0.2,
    epsilons: [plan.epsilon],
    delta: 1e-5,
    rounds: [plan.rounds],
    dropout: [0],
    models: [plan.model],
    seeds: [1],
    privacy: ['record'],
    aggregation: [plan.aggregation],
    trainingArgs: plan.trainingArgs,
  });
  const job = jobs.find((j) => j.setting.baseline === 'federated' && j.setting.epsilon === plan.epsilon);
  if (!job) throw new Error(`bench: the grid has no federated setting at epsilon ${plan.epsilon}`);
  const institutionRounds = plan.institutions * plan.rounds;
  return {
    async run(transport) {
      const cpu = process.cpuUsage();
      const row = await runFederated({ tf, job, data, partition, transport });
      const used = process.cpuUsage(cpu);
      if (row.aucPerRound.length !== plan.rounds) throw new Error(`bench over ${transport}: ${row.aucPerRound.length} of ${plan.rounds} rounds committed`);
      return { rate: institutionRounds / row.seconds, cpuRate: institutionRounds / ((used.user + used.system) / 1e6), auc: row.auc };
    },
  };
}
