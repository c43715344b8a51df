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
import { selectBackend } from '@dpfed/client/tf-backend';
import { roundTo } from './statistics.ts';
import { timedSimSetting } from './timed-sim-setting.ts';

export const BENCH_TRAINING = ['--local-steps', '2', '--sample-rate', '0.1', '--batch-size', '32'];
const INSTITUTIONS = 20;
const ROUNDS = 20;

export async function benchSim(o: { quick?: boolean; aggregation?: 'plain' | 'secagg' } = {}): Promise<Record<string, number | string>> {
  const { tf } = await selectBackend('wasm');
  const rounds = o.quick ? 5 : ROUNDS;
  const aggregation = o.aggregation ?? 'plain';
  const setting = await timedSimSetting(tf, { institutions: INSTITUTIONS, rounds, model: 'mlp:64,32', epsilon: 4, aggregation, trainingArgs: BENCH_TRAINING });
  await setting.run('memory'); // warm-up: the wasm backend, the JIT and the noise workers' first start
  const memory = await setting.run('memory');
  const grpc = await setting.run('grpc');
  return {
    simInstitutionRoundsPerSecond: roundTo(memory.rate, 1),
    simInstitutionRoundsPerSecondGrpc: roundTo(grpc.rate, 1),
    simInstitutionRoundsPerCpuSecond: roundTo(memory.cpuRate, 1),
    simInstitutionRoundsPerCpuSecondGrpc: roundTo(grpc.cpuRate, 1),
    simBenchAuc: roundTo(memory.auc, 4),
    simBenchPlan: `${INSTITUTIONS} institutions x ${rounds} rounds, mlp:64,32, record DP eps 4, ${aggregation}, ${BENCH_TRAINING.join(' ')}`,
  };
}
