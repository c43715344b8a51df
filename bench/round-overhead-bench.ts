// Round overhead: the time a round takes when local training costs nothing. 10 institutions on loopback
// gRPC, each with a learner that returns global + a tiny delta at once and a fixed score histogram
// (bench/overhead-clients.ts); privacy off, plain aggregation, FedAvg. What is left is the protocol:
// posting tasks, model downloads, result uploads and their validation, aggregation, the evaluation phase
// and the SQLite commit. The figure is the median RoundSummary.seconds (sampling → commit), the first
// round skipped. The institutions run in a separate process (as they do in production), so their side of
// the wire does not count as coordinator time; on this 2-core machine they still compete for the CPU.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFlags } from '../cli/flags.ts';
import { NODE_HEAP_FLAGS } from '../cli/node-heap.ts';
import { runConfigFromFlags, runFlags } from '../cli/run-flags.ts';
import { startCoordinator } from '../coordinator/coordinator-server.ts';
import { coordinatorPrivacy } from '../coordinator/ledger-privacy.ts';
import type { RoundSummary } from '../coordinator/round-machine.ts';
import { parameterCount } from '../proto/model-spec.ts';
import { median, roundTo } from './statistics.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLIENTS_SCRIPT = join(ROOT, 'bench', 'overhead-clients.ts');

export interface RoundOverheadRun {
  parameters: number;
  clients: number;
  /** RoundSummary.seconds of every round, in ms. */
  roundMs: number[];
  medianMs: number;
  /** CPU time (user + system) of the coordinator's process per round, in ms: its own work, whatever the institutions' process is doing. */
  medianCpuMs: number;
  /** CPU time of the institutions' process per round (all of them, protocol work only: they do not train), in ms; null where /proc is missing. */
  institutionsCpuMs: number | null;
}

/** User + system CPU time of a process in ms, from /proc (Linux); null elsewhere. */
function processCpuMs(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks of 1/100 s
  } catch {
    return null;
  }
}

/** One federation of `clients` no-training institutions for `rounds` rounds; median round time without the first. */
export async function measureRoundOverhead(o: { model: string; clients: number; rounds: number }): Promise<RoundOverheadRun> {
  const dir = mkdtempSync(join(tmpdir(), 'dpfed-round-bench-'));
  const flags = runFlags({ rounds: o.rounds, minClients: o.clients, privacy: 'off', aggregation: 'plain' });
  const config = runConfigFromFlags(parseFlags({ name: 'bench', summary: '', flags }, ['--model', o.model, '--features', '30', '--strategy', 'fedavg', '--round-timeout', '60', '--phase-timeout', '60']));
  const coordinator = await startCoordinator({ dbPath: join(dir, 'bench.sqlite'), config, privacy: coordinatorPrivacy });
  const summaries: RoundSummary[] = [];
  const cpuMs: number[] = [];
  const institutionsCpu: (number | null)[] = [];
  let lastCpu = process.cpuUsage();
  coordinator.machine.on('round', (s: RoundSummary) => {
    const cpu = process.cpuUsage(lastCpu);
    lastCpu = process.cpuUsage();
    cpuMs.push((cpu.user + cpu.system) / 1000);
    institutionsCpu.push(processCpuMs(clients.pid)); // rounds commit only once the institutions' process runs
    summaries.push(s);
    if (process.env.DPFED_BENCH_VERBOSE) process.stderr.write(`round ${s.round}: ${JSON.stringify(s.phaseMs)}\n`);
  });
  const clients = spawn(process.execPath, [...NODE_HEAP_FLAGS, ...(process.env.DPFED_BENCH_CLIENT_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.DPFED_BENCH_CLIENT_PROF}`] : []), '--import', 'tsx', CLIENTS_SCRIPT, `127.0.0.1:${coordinator.port}`, String(o.clients)], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<number>((resolve) => clients.on('exit', (code) => resolve(code ?? 1)));
  try {
    await coordinator.finished;
    const code = await exited;
    if (code !== 0) throw new Error(`round-overhead bench: the institutions' process exited with ${code}`);
  } finally {
    if (clients.exitCode === null) clients.kill('SIGKILL');
    await coordinator.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (summaries.length !== o.rounds) throw new Error(`round-overhead bench: ${summaries.length} of ${o.rounds} rounds committed`);
  const roundMs = summaries.map((s) => s.seconds * 1000);
  const first = institutionsCpu[0];
  const last = institutionsCpu[institutionsCpu.length - 1];
  const institutionsCpuMs = first != null && last != null && o.rounds > 1 ? (last - first) / (o.rounds - 1) : null;
  return { parameters: parameterCount(config.modelSpec), clients: o.clients, roundMs, medianMs: median(roundMs.slice(1)), medianCpuMs: median(cpuMs.slice(1)), institutionsCpuMs };
}

/** ~100k parameters (30-256-256-100-1: 99,529) and ~1M (30-1024-940-1: 996,185). */
export const MODEL_100K = 'mlp:256,256,100';
export const MODEL_1M = 'mlp:1024,940';

export async function benchRoundOverhead(o: { quick?: boolean } = {}): Promise<{
  roundOverheadMs: number;
  roundOverheadMs1M: number;
  roundOverheadCoordinatorCpuMs: number;
  roundOverheadCoordinatorCpuMs1M: number;
  roundOverheadInstitutionsCpuMs: number | null;
  roundOverheadInstitutionsCpuMs1M: number | null;
  roundOverheadClients: number;
}> {
  const clients = 10;
  const small = await measureRoundOverhead({ model: MODEL_100K, clients, rounds: o.quick ? 6 : 21 });
  const large = await measureRoundOverhead({ model: MODEL_1M, clients, rounds: o.quick ? 4 : 11 });
  return {
    roundOverheadMs: roundTo(small.medianMs, 2),
    roundOverheadMs1M: roundTo(large.medianMs, 2),
    roundOverheadCoordinatorCpuMs: roundTo(small.medianCpuMs, 2),
    roundOverheadCoordinatorCpuMs1M: roundTo(large.medianCpuMs, 2),
    roundOverheadInstitutionsCpuMs: small.institutionsCpuMs === null ? null : roundTo(small.institutionsCpuMs, 2),
    roundOverheadInstitutionsCpuMs1M: large.institutionsCpuMs === null ? null : roundTo(large.institutionsCpuMs, 2),
    roundOverheadClients: clients,
  };
}
