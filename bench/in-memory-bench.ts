// `--only in-memory`: the federation core over the in-memory transport, as a simulation drives it, with
// training as light as it gets: 100 institutions × 20 rounds, logistic regression on the bundled
// card-fraud data (iid split, ~90 training rows each, 20 % common test rows), privacy off, plain FedAvg,
// one local step of batch 32 per round, every institution in every round (simulations/federated-run.ts).
//   inMemoryInstitutionRoundsPerSecond     institutions × committed rounds ÷ the run's wall-clock seconds,
//                                          coordinator and institutions started inside it (goal >= 2,000);
//   inMemoryInstitutionRoundsPerCpuSecond  the same per CPU second of this process, which other load on the
//                                          machine does not lower.
// What is left is the protocol in one process: tasks, model downloads and result uploads serialised with
// the contract's protobuf encoder, validation, aggregation, evaluation histograms and the SQLite commit.
import { selectBackend } from '@dpfed/client/tf-backend';
import { runFederated } from '@dpfed/simulations/federated-run';
import { parseSplit } from '@dpfed/simulations/institution-split';
import { expandGrid } from '@dpfed/simulations/sim-grid';
import { partitionData } from '@dpfed/simulations/sim-partition';
import { bundledFraudSimData } from './sim-bench.ts';
import { roundTo } from './statistics.ts';

const INSTITUTIONS = 100;
const ROUNDS = 20;
const TRAINING = ['--local-steps', '1', '--batch-size', '32'];

export async function benchInMemory(o: { quick?: boolean } = {}): Promise<Record<string, number | string>> {
  const { tf } = await selectBackend('wasm');
  const data = await bundledFraudSimData();
  const rounds = o.quick ? 5 : ROUNDS;
  const partition = partitionData(data, { split: parseSplit('iid'), institutions: INSTITUTIONS, testShare: 0.2, seed: '1' });
  const { jobs } = expandGrid({
    data: 'bench',
    split: 'iid',
    institutions: INSTITUTIONS,
    testShare: 0.2,
    epsilons: [null],
    delta: 1e-5,
    rounds: [rounds],
    dropout: [0],
    models: ['logistic'],
    seeds: [1],
    privacy: ['record'],
    aggregation: ['plain'],
    trainingArgs: TRAINING,
  });
  const job = jobs.find((j) => j.setting.baseline === 'federated' && j.setting.epsilon === null);
  if (!job) throw new Error('in-memory bench: the grid has no federated setting without DP');
  const run = async () => {
    const cpu = process.cpuUsage();
    const row = await runFederated({ tf, job, data, partition, transport: 'memory' });
    const used = process.cpuUsage(cpu);
    if (row.aucPerRound.length !== rounds) throw new Error(`in-memory bench: ${row.aucPerRound.length} of ${rounds} rounds committed`);
    return { rate: (INSTITUTIONS * rounds) / row.seconds, cpuRate: (INSTITUTIONS * rounds) / ((used.user + used.system) / 1e6), auc: row.auc };
  };
  await run(); // warm-up: the wasm backend and the JIT
  const measured = await run();
  return {
    inMemoryInstitutionRoundsPerSecond: roundTo(measured.rate, 1),
    inMemoryInstitutionRoundsPerCpuSecond: roundTo(measured.cpuRate, 1),
    inMemoryBenchAuc: roundTo(measured.auc, 4),
    inMemoryBenchPlan: `${INSTITUTIONS} institutions x ${rounds} rounds, logistic, privacy off, plain, ${TRAINING.join(' ')}`,
  };
}
