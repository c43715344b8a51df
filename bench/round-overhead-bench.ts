// Round overhead: the time a round takes when local training costs nothing. 10 institutions on loopback
// gRPC, each with a learner that returns global + a tiny delta at once and a fixed score histogram
// (bench/overhead-clients.ts); privacy off, plain aggregation, FedAvg. What is left is the protocol:
// posting tasks, model downloads, result uploads and their validation, aggregation, the evaluation phase
// and the SQLite commit. The figure is the median RoundSummary.seconds (sampling → commit) of the rounds
// after a warm-up: a federation runs for many rounds, and its first ones run code V8 has not optimised
// yet (at 100k parameters on a 2-core server: rounds 2-11 took a median of 41 ms, rounds 21-30 25 ms, rounds
// 91-100 20 ms). The median of the first rounds after the first is reported beside it (…ColdMs).
// The institutions run in a separate process (as they do in production), so their side of the wire does
// not count as coordinator time; on a small machine they still compete for the CPU.
// Each figure is measured twice: with the zero-copy framing of the Session frames that carry tensors
// (the default), and with it switched off (proto/zero-copy-framing.ts: every frame through the generated
// encoder), keys …NoZeroCopy.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags } from '@dpfed/proto/command-flags';
import { NODE_HEAP_FLAGS } from 'dpfed/node-heap';
import { runConfigFromFlags, runFlags } from '@dpfed/coordinator/run-flags';
import { startCoordinator } from '@dpfed/coordinator/coordinator-server';
import { coordinatorPrivacy } from '@dpfed/coordinator/ledger-privacy';
import type { RoundSummary } from '@dpfed/coordinator/round-machine';
import { loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { parameterCount } from '@dpfed/proto/model-spec';
import { ZERO_COPY_ENV } from '@dpfed/proto/zero-copy-framing';
import { benchScriptArgs, ROOT } from './bench-paths.ts';
import { median, roundTo } from './statistics.ts';

export interface RoundOverheadRun {
  parameters: number;
  clients: number;
  /** RoundSummary.seconds of every round, in ms. */
  roundMs: number[];
  /** Median of the rounds after the warm-up. */
  medianMs: number;
  /** Median of the warm-up rounds after the first (the first also pays for connections and first downloads). */
  coldMedianMs: number;
  /** CPU time (user + system) of the coordinator's process per round after the warm-up, in ms: its own work, whatever the institutions' process is doing. */
  medianCpuMs: number;
  /** CPU time of the institutions' process per round after the warm-up (all of them, protocol work only: they do not train), in ms; null where /proc is missing. */
  institutionsCpuMs: number | null;
}

/** User + system CPU time of a process in ms, from /proc (Linux); null elsewhere. */
export function processCpuMs(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks of 1/100 s
  } catch {
    return null;
  }
}

/** One federation of `clients` no-training institutions for `warmup` + `rounds` rounds; median round time of the last `rounds`. */
export async function measureRoundOverhead(o: { model: string; clients: number; rounds: number; warmup: number; zeroCopy?: boolean }): Promise<RoundOverheadRun> {
  const total = o.warmup + o.rounds;
  const dir = mkdtempSync(join(tmpdir(), 'dpfed-round-bench-'));
  const flags = runFlags({ rounds: total, minClients: o.clients, privacy: 'off', aggregation: 'plain' });
  const config = runConfigFromFlags(
    parseFlags({ name: 'bench', summary: '', flags }, ['--model', o.model, '--features', '30', '--strategy', 'fedavg', '--round-timeout', '60', '--phase-timeout', '60']),
  );
  // plaintext, so the figure stays comparable with the goals, which were set without TLS; the
  // institutions are enrolled with the identity keys their process loads from `dir`
  const enrol = Array.from({ length: o.clients }, (_, k) => ({ institutionId: `bank-${k + 1}`, publicKey: loadOrCreateIdentity(join(dir, `bank-${k + 1}.identity`)).publicKey }));
  const coordinator = await startCoordinator({
    dbPath: join(dir, 'bench.sqlite'),
    keyDir: join(dir, 'keys'),
    config,
    privacy: coordinatorPrivacy,
    insecure: true,
    enrol,
    zeroCopy: o.zeroCopy ?? true,
  });
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
  const clients = spawn(
    process.execPath,
    [
      ...NODE_HEAP_FLAGS,
      ...(process.env.DPFED_BENCH_CLIENT_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.DPFED_BENCH_CLIENT_PROF}`] : []),
      ...benchScriptArgs('overhead-clients'),
      `127.0.0.1:${coordinator.port}`,
      String(o.clients),
      dir,
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, [ZERO_COPY_ENV]: o.zeroCopy === false ? '0' : '1' } },
  );
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
  if (summaries.length !== total) throw new Error(`round-overhead bench: ${summaries.length} of ${total} rounds committed`);
  const roundMs = summaries.map((s) => s.seconds * 1000);
  const first = institutionsCpu[o.warmup - 1];
  const last = institutionsCpu[total - 1];
  const institutionsCpuMs = first != null && last != null && o.rounds > 0 ? (last - first) / o.rounds : null;
  return {
    parameters: parameterCount(config.modelSpec),
    clients: o.clients,
    roundMs,
    medianMs: median(roundMs.slice(o.warmup)),
    coldMedianMs: median(roundMs.slice(1, Math.max(2, o.warmup))),
    medianCpuMs: median(cpuMs.slice(o.warmup)),
    institutionsCpuMs,
  };
}

/** ~100k parameters (30-256-256-100-1: 99,529) and ~1M (30-1024-940-1: 996,185). */
export const MODEL_100K = 'mlp:256,256,100';
export const MODEL_1M = 'mlp:1024,940';

export async function benchRoundOverhead(o: { quick?: boolean } = {}): Promise<{
  roundOverheadMs: number;
  roundOverheadMs1M: number;
  roundOverheadColdMs: number;
  roundOverheadColdMs1M: number;
  roundOverheadWarmupRounds: number;
  roundOverheadMeasuredRounds: number;
  roundOverheadCoordinatorCpuMs: number;
  roundOverheadCoordinatorCpuMs1M: number;
  roundOverheadInstitutionsCpuMs: number | null;
  roundOverheadInstitutionsCpuMs1M: number | null;
  roundOverheadClients: number;
  roundOverheadMsNoZeroCopy: number;
  roundOverheadMs1MNoZeroCopy: number;
  roundOverheadCoordinatorCpuMsNoZeroCopy: number;
  roundOverheadCoordinatorCpuMs1MNoZeroCopy: number;
  roundOverheadInstitutionsCpuMsNoZeroCopy: number | null;
  roundOverheadInstitutionsCpuMs1MNoZeroCopy: number | null;
}> {
  const clients = 10;
  const warmup = o.quick ? 5 : 40;
  const rounds = o.quick ? 5 : 40;
  const small = await measureRoundOverhead({ model: MODEL_100K, clients, warmup, rounds });
  const large = await measureRoundOverhead({ model: MODEL_1M, clients, warmup, rounds });
  const smallPlain = await measureRoundOverhead({ model: MODEL_100K, clients, warmup, rounds, zeroCopy: false });
  const largePlain = await measureRoundOverhead({ model: MODEL_1M, clients, warmup, rounds, zeroCopy: false });
  const ms = (v: number | null) => (v === null ? null : roundTo(v, 2));
  return {
    roundOverheadMs: roundTo(small.medianMs, 2),
    roundOverheadMs1M: roundTo(large.medianMs, 2),
    roundOverheadColdMs: roundTo(small.coldMedianMs, 2),
    roundOverheadColdMs1M: roundTo(large.coldMedianMs, 2),
    roundOverheadWarmupRounds: warmup,
    roundOverheadMeasuredRounds: rounds,
    roundOverheadCoordinatorCpuMs: roundTo(small.medianCpuMs, 2),
    roundOverheadCoordinatorCpuMs1M: roundTo(large.medianCpuMs, 2),
    roundOverheadInstitutionsCpuMs: ms(small.institutionsCpuMs),
    roundOverheadInstitutionsCpuMs1M: ms(large.institutionsCpuMs),
    roundOverheadClients: clients,
    roundOverheadMsNoZeroCopy: roundTo(smallPlain.medianMs, 2),
    roundOverheadMs1MNoZeroCopy: roundTo(largePlain.medianMs, 2),
    roundOverheadCoordinatorCpuMsNoZeroCopy: roundTo(smallPlain.medianCpuMs, 2),
    roundOverheadCoordinatorCpuMs1MNoZeroCopy: roundTo(largePlain.medianCpuMs, 2),
    roundOverheadInstitutionsCpuMsNoZeroCopy: ms(smallPlain.institutionsCpuMs),
    roundOverheadInstitutionsCpuMs1MNoZeroCopy: ms(largePlain.institutionsCpuMs),
  };
}
