// `--only sim`: how fast `dpfed sim` runs a federation, in institution-rounds per second (institutions ×
// committed rounds ÷ the setting's wall-clock seconds, start-up of the coordinator and the institutions
// included): 20 institutions × 20 rounds, MLP 30-64-32-1 on the bundled card-fraud data (iid split,
// 20 % common test rows), record-level DP at ε = 4, one setting, run as `dpfed sim` runs it
// (simulations/federated-run.ts), in this thread:
//   simInstitutionRoundsPerSecond      over the in-memory transport (goal >= 400 on 2 cores);
//   simInstitutionRoundsPerSecondGrpc  the same federation over loopback gRPC, in the same run;
//   simInstitutionRoundsPerCpuSecond(Grpc)  the same per CPU second of this process (all its threads),
//                                      which other load on the machine does not lower.
// The plan (BENCH_TRAINING): 2 local DP-SGD steps per round at sample rate 0.1 (about 29 of an
// institution's ~290 training rows per step, the batch-size constant 32), plain aggregation; each
// committed model is scored on the ~2,300 test rows. Override with flags of `dpfed sim`'s plan.
import { join } from 'node:path';
import { selectBackend } from '@dpfed/client/tf-backend';
import { readSchemaFile } from '@dpfed/proto/data-schema';
import { runFederated } from '@dpfed/simulations/federated-run';
import type { TransportName } from '@dpfed/simulations/federation-transport';
import { parseSplit } from '@dpfed/simulations/institution-split';
import { loadSimCsv } from '@dpfed/simulations/sim-data';
import { expandGrid } from '@dpfed/simulations/sim-grid';
import { partitionData } from '@dpfed/simulations/sim-partition';
import { ROOT } from './bench-paths.ts';
import { roundTo } from './statistics.ts';

export const BENCH_TRAINING = ['--local-steps', '2', '--sample-rate', '0.1', '--batch-size', '32'];
const INSTITUTIONS = 20;
const ROUNDS = 20;

/** The bundled card-fraud sample as `dpfed sim` loads it, through its public schema. */
export function bundledFraudSimData(): ReturnType<typeof loadSimCsv> {
  return loadSimCsv({
    path: join(ROOT, 'data', 'creditcard_fraud_ulb_sample.csv'),
    labelColumn: 'label',
    schema: readSchemaFile(join(ROOT, 'data', 'creditcard_fraud_ulb_sample.schema.json')),
  });
}

export async function benchSim(o: { quick?: boolean; aggregation?: 'plain' | 'secagg' } = {}): Promise<Record<string, number | string>> {
  const { tf } = await selectBackend('wasm');
  const data = await bundledFraudSimData();
  const rounds = o.quick ? 5 : ROUNDS;
  const aggregation = o.aggregation ?? 'plain';
  const partition = partitionData(data, { split: parseSplit('iid'), institutions: INSTITUTIONS, testShare: 0.2, seed: '1' });
  const { jobs } = expandGrid({
    data: 'bench',
    split: 'iid',
    institutions: INSTITUTIONS,
    testShare: 0.2,
    epsilons: [4],
    delta: 1e-5,
    rounds: [rounds],
    dropout: [0],
    models: ['mlp:64,32'],
    seeds: [1],
    privacy: ['record'],
    aggregation: [aggregation],
    trainingArgs: BENCH_TRAINING,
  });
  const job = jobs.find((j) => j.setting.privacy === 'record')!;
  const perSecond = async (transport: TransportName) => {
    const cpu = process.cpuUsage();
    const row = await runFederated({ tf, job, data, partition, transport });
    const used = process.cpuUsage(cpu);
    if (row.aucPerRound.length !== rounds) throw new Error(`sim bench over ${transport}: ${row.aucPerRound.length} of ${rounds} rounds committed`);
    return { rate: (INSTITUTIONS * rounds) / row.seconds, cpuRate: (INSTITUTIONS * rounds) / ((used.user + used.system) / 1e6), auc: row.auc };
  };
  await perSecond('memory'); // warm-up: the wasm backend, the JIT and the noise workers' first start
  const memory = await perSecond('memory');
  const grpc = await perSecond('grpc');
  return {
    simInstitutionRoundsPerSecond: roundTo(memory.rate, 1),
    simInstitutionRoundsPerSecondGrpc: roundTo(grpc.rate, 1),
    simInstitutionRoundsPerCpuSecond: roundTo(memory.cpuRate, 1),
    simInstitutionRoundsPerCpuSecondGrpc: roundTo(grpc.cpuRate, 1),
    simBenchAuc: roundTo(memory.auc, 4),
    simBenchPlan: `${INSTITUTIONS} institutions x ${rounds} rounds, mlp:64,32, record DP eps 4, ${aggregation}, ${BENCH_TRAINING.join(' ')}`,
  };
}
