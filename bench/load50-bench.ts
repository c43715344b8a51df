// Load: 50 institutions on one coordinator over loopback, as an operator runs them: mutual TLS with a
// federation CA and a certificate per institution, an enrolment allow-list, SecAgg, 5 rounds, every
// institution sampled in every round. The coordinator runs in this process; the institutions run in a few
// child processes (bench/load50-clients.ts), so this process's resident memory is the coordinator's own
// (plus the bench's bookkeeping). The learner is either the real TfjsLearner (wasm) on 1/50 of the
// bundled card-fraud sample with record-level DP (`tfjs`, the default), or the round-overhead bench's
// no-training learner with privacy off (`none`), which isolates the protocol's cost.
// Figures: each round's RoundSummary.seconds (sampling → commit), the whole run (coordinator start → last
// commit, so it includes every institution's start-up, TLS handshake and registration), round 1 over the
// median of the later rounds, the same ratio in CPU seconds of all processes (which the machine's other
// load does not inflate, unlike wall clock), and the coordinator's peak RSS (/proc's VmHWM, or 50 ms
// samples when an earlier bench group in this process left a higher mark). `--quick` uses `none`.
import { spawn, type ChildProcess } from 'node:child_process';
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
import { createCertificateAuthority, issueCertificate } from '@dpfed/proto/certificate-authority';
import { readTlsMaterial } from '@dpfed/proto/tls-credentials';
import { benchScriptArgs, ROOT } from './bench-paths.ts';
import { processCpuMs } from './round-overhead-bench.ts';
import { median, roundTo } from './statistics.ts';

export type LoadLearner = 'tfjs' | 'none';

export interface LoadRunOptions {
  institutions: number;
  rounds: number;
  learner: LoadLearner;
  /** Child processes the institutions are spread over. */
  processes: number;
  /** Extra `dpfed coordinator` flags (after the bench's own). */
  flags?: string[];
}

export interface LoadRun {
  institutions: number;
  /** RoundSummary.seconds of each round. */
  roundSeconds: number[];
  /** Participants of each committed round. */
  participants: number[];
  /** Coordinator start (before any institution process exists) → last commit. */
  wholeSeconds: number;
  /**
   * CPU seconds (user + system, all threads) spent in each round by the coordinator's process and by the
   * institutions' processes together: unlike wall-clock time, not inflated by other load on the machine.
   * Round 1's figure starts at its sampling; the institutions' start-up before it is `startupCpuSeconds`.
   */
  roundCpuSeconds: { coordinator: number; institutions: number | null }[];
  startupCpuSeconds: { coordinator: number; institutions: number | null };
  /** Coordinator start → the first round's sampling (institutions' start-up, TLS, registration). */
  startupSeconds: number;
  /** Peak resident set of this (the coordinator's) process during the run, in MB. */
  peakRssMB: number;
  failures: { round: number; reason: string }[];
  /** Institutions dropped from any round. */
  dropped: string[];
  /** The global model before round 1 and after the last round. */
  initialModel: Float32Array;
  finalModel: Float32Array;
}

/** This process's peak resident set so far (VmHWM), in MB; null without /proc. */
function highWaterMB(): number | null {
  try {
    const line = readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmHWM:'));
    return line ? Number(line.split(/\s+/)[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Writes the federation CA, the coordinator's server certificate and one client certificate per institution to `dir`. */
async function writePki(dir: string, ids: string[]): Promise<ReturnType<typeof readTlsMaterial>> {
  const ca = await createCertificateAuthority(dir, { name: 'dpfed load bench CA', days: 1 });
  const server = await issueCertificate(dir, { name: 'coordinator', outDir: dir, server: true, hosts: ['127.0.0.1'], days: 1 });
  for (const id of ids) await issueCertificate(dir, { name: id, outDir: dir, days: 1 });
  return readTlsMaterial({ ca: ca.certPath, cert: server.certPath, key: server.keyPath }, { ca: 'ca', cert: 'cert', key: 'key' });
}

/** One federation of `institutions` institutions in `processes` child processes for `rounds` rounds. */
export async function runLoad(o: LoadRunOptions): Promise<LoadRun> {
  const dir = mkdtempSync(join(tmpdir(), 'dpfed-load-bench-'));
  const ids = Array.from({ length: o.institutions }, (_, k) => `bank-${k + 1}`);
  const children: ChildProcess[] = [];
  try {
    const tls = await writePki(dir, ids);
    const enrol = ids.map((id) => ({ institutionId: id, publicKey: loadOrCreateIdentity(join(dir, `${id}.identity`)).publicKey }));
    const privacy = o.learner === 'tfjs' ? 'record' : 'off';
    const flags = runFlags({ rounds: o.rounds, minClients: o.institutions, privacy, aggregation: 'secagg' });
    const argv = ['--model', 'mlp:64,32', '--features', '30', '--strategy', 'fedavg', '--seed', 'load50', ...(o.flags ?? [])];
    const config = runConfigFromFlags(parseFlags({ name: 'bench', summary: '', flags }, argv));

    let peakRss = process.memoryUsage().rss;
    const hwmBefore = highWaterMB();
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
    const t0 = performance.now();
    let firstSampling: number | null = null;
    const coordinator = await startCoordinator({ dbPath: join(dir, 'load.sqlite'), keyDir: join(dir, 'keys'), host: '127.0.0.1', port: 0, config, privacy: coordinatorPrivacy, tls, enrol });
    const summaries: RoundSummary[] = [];
    const failures: { round: number; reason: string }[] = [];
    const cpuNow = () => {
      const own = process.cpuUsage();
      let institutions: number | null = 0;
      for (const c of children) {
        const ms = processCpuMs(c.pid);
        institutions = ms === null || institutions === null ? null : institutions + ms / 1000;
      }
      return { coordinator: (own.user + own.system) / 1e6, institutions };
    };
    const startCpu = cpuNow();
    let samplingCpu: ReturnType<typeof cpuNow> | null = null;
    const cpuAtCommit: ReturnType<typeof cpuNow>[] = [];
    // round 1 starts when the machine first leaves 'starting'/'waiting' (polled: the machine emits no event for it)
    const samplingProbe = setInterval(() => {
      const { phase } = coordinator.machine.status;
      if (samplingCpu === null && phase !== 'starting' && phase !== 'waiting') samplingCpu = cpuNow();
    }, 20);
    coordinator.machine.on('round', (s: RoundSummary) => {
      cpuAtCommit.push(cpuNow());
      summaries.push(s);
      if (firstSampling === null) firstSampling = performance.now() - s.seconds * 1000;
      if (process.env.DPFED_BENCH_VERBOSE) process.stderr.write(`load: round ${s.round}: ${s.participants} institutions, ${s.seconds.toFixed(2)} s ${JSON.stringify(s.phaseMs)}\n`);
    });
    coordinator.machine.on('round-failed', (f: { round: number; reason: string }) => {
      failures.push(f);
      process.stderr.write(`load: round ${f.round} failed: ${f.reason}\n`);
    });
    const per = Math.ceil(o.institutions / o.processes);
    const exits: Promise<number>[] = [];
    for (let first = 1; first <= o.institutions; first += per) {
      const count = Math.min(per, o.institutions - first + 1);
      const prof = process.env.DPFED_BENCH_CLIENT_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.DPFED_BENCH_CLIENT_PROF}`] : [];
      const child = spawn(
        process.execPath,
        [...NODE_HEAP_FLAGS, ...prof, ...benchScriptArgs('load50-clients'), `127.0.0.1:${coordinator.port}`, dir, String(first), String(count), o.learner, String(o.institutions)],
        { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
      );
      children.push(child);
      exits.push(new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1))));
    }
    try {
      await coordinator.finished;
      const wholeSeconds = (performance.now() - t0) / 1000;
      const codes = await Promise.all(exits);
      if (codes.some((c) => c !== 0)) throw new Error(`load bench: institution processes exited with ${codes.join(', ')}`);
      clearInterval(sampler);
      clearInterval(samplingProbe);
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      const diff = (a: ReturnType<typeof cpuNow>, b: ReturnType<typeof cpuNow>) => ({
        coordinator: b.coordinator - a.coordinator,
        institutions: a.institutions === null || b.institutions === null ? null : b.institutions - a.institutions,
      });
      const roundStarts = [samplingCpu ?? startCpu, ...cpuAtCommit.slice(0, -1)];
      const hwm = highWaterMB();
      const last = summaries.at(-1);
      const modelAt = (version: number) => {
        const model = coordinator.store.model(coordinator.runId, version);
        if (!model) throw new Error(`load bench: no stored model version ${version}`);
        return model.parameters;
      };
      return {
        institutions: o.institutions,
        roundSeconds: summaries.map((s) => s.seconds),
        participants: summaries.map((s) => s.participants),
        wholeSeconds,
        roundCpuSeconds: cpuAtCommit.map((c, i) => diff(roundStarts[i], c)),
        startupCpuSeconds: diff(startCpu, samplingCpu ?? startCpu),
        startupSeconds: ((firstSampling ?? performance.now()) - t0) / 1000,
        // VmHWM is exact when it rose during the run; when an earlier bench group in this process set it
        // higher, the peak of the 50 ms samples stands in
        peakRssMB: hwm !== null && hwmBefore !== null && hwm > hwmBefore ? hwm : peakRss / 2 ** 20,
        failures,
        dropped: summaries.flatMap((s) => s.dropped),
        initialModel: modelAt(summaries.length ? summaries[0].modelVersion - 1 : 0),
        finalModel: modelAt(last?.modelVersion ?? 0),
      };
    } finally {
      clearInterval(sampler);
      clearInterval(samplingProbe);
      await coordinator.close();
    }
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchLoad50(o: { quick?: boolean; learner?: LoadLearner } = {}): Promise<Record<string, unknown>> {
  const learner = o.learner ?? (o.quick ? 'none' : 'tfjs');
  const run = await runLoad({ institutions: 50, rounds: 5, learner, processes: 5 });
  if (run.roundSeconds.length !== 5 || run.participants.some((p) => p !== 50)) {
    throw new Error(`load50: ${run.roundSeconds.length} of 5 rounds committed, participants ${run.participants.join(', ')}`);
  }
  const steady = median(run.roundSeconds.slice(1));
  const cpu = (r: { coordinator: number; institutions: number | null }) => r.coordinator + (r.institutions ?? 0);
  const cpuPerRound = run.roundCpuSeconds.map(cpu);
  return {
    rounds50Seconds: { perRound: run.roundSeconds.map((s) => roundTo(s, 2)), whole: roundTo(run.wholeSeconds, 1), startup: roundTo(run.startupSeconds, 1) },
    round1Over50Steady: roundTo(run.roundSeconds[0] / steady, 2),
    coordinatorRssMB50: Math.round(run.peakRssMB),
    // CPU seconds of all processes (coordinator + institutions) per round: round 1 over the later rounds'
    // median without the machine's other load in it
    rounds50CpuSeconds: { perRound: cpuPerRound.map((s) => roundTo(s, 1)), coordinator: run.roundCpuSeconds.map((r) => roundTo(r.coordinator, 2)), startup: roundTo(cpu(run.startupCpuSeconds), 1) },
    round1Over50SteadyCpu: roundTo(cpuPerRound[0] / median(cpuPerRound.slice(1)), 2),
    load50Learner: learner === 'tfjs' ? 'TfjsLearner (wasm), record DP, 1/50 of the card-fraud sample each' : 'no training, privacy off',
    load50Participants: run.participants,
  };
}
