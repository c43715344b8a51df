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
import { roundTo } from './statistics.ts';
import { timedSimSetting } from './timed-sim-setting.ts';

const INSTITUTIONS = 100;
const ROUNDS = 20;
const TRAINING = ['--local-steps', '1', '--batch-size', '32'];

export async function benchInMemory(o: { quick?: boolean } = {}): Promise<Record<string, number | string>> {
  const { tf } = await selectBackend('wasm');
  const rounds = o.quick ? 5 : ROUNDS;
  const setting = await timedSimSetting(tf, { institutions: INSTITUTIONS, rounds, model: 'logistic', epsilon: null, aggregation: 'plain', trainingArgs: TRAINING });
  await setting.run('memory'); // warm-up: the wasm backend and the JIT
  const measured = await setting.run('memory');
  return {
    inMemoryInstitutionRoundsPerSecond: roundTo(measured.rate, 1),
    inMemoryInstitutionRoundsPerCpuSecond: roundTo(measured.cpuRate, 1),
    inMemoryBenchAuc: roundTo(measured.auc, 4),
    inMemoryBenchPlan: `${INSTITUTIONS} institutions x ${rounds} rounds, logistic, privacy off, plain, ${TRAINING.join(' ')}`,
  };
}
