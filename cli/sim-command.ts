// `dpfed sim`: whole federations in one process to ask what a privacy budget costs, whether federation
// beats each institution alone and what dropouts do. `dpfed sim merge` combines the results of shards.
// The engine is simulations/ (sim-sweep.ts); this file turns flags into its inputs and prints.
import { BACKEND_NAMES, type BackendName } from '@dpfed/client/tf-backend';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { DEFAULT_TRANSPORT, TRANSPORTS, type TransportName } from '@dpfed/simulations/federation-transport';
import { droppedPerRound, sharedRunFlagSpecs, SHARED_RUN_FLAGS } from '@dpfed/simulations/sim-run-config';
import { parseSplit, splitName } from '@dpfed/simulations/institution-split';
import { SimDataError } from '@dpfed/simulations/sim-data';
import { parseEpsilons, parseModels, parseShard, type SweepSpec } from '@dpfed/simulations/sim-grid';
import { loadSimInputs } from '@dpfed/simulations/sim-inputs';
import { readResults, ResultsFileError } from '@dpfed/simulations/sim-results-file';
import { ExistingResultsError, runSweep, type SweepSummary } from '@dpfed/simulations/sim-sweep';
import { defaultWorkers } from '@dpfed/simulations/sim-worker-pool';
import { createSimProgress, type SimProgress } from '@dpfed/simulations/sim-progress';
import { renderHelp, runCommand, UsageError, type CommandSpec, type FlagValues } from '@dpfed/proto/command-flags';
import { schemaFromFlag } from '@dpfed/proto/schema-flag';
import { emitJob, K8S_JOB_FLAGS, podArgs } from './sim-k8s-job.ts';
import { mergeCommand, mergeMain } from './sim-merge-command.ts';
import { drawPlots } from './sim-plot-output.ts';

const positiveInt = (v: number | string) => (Number.isInteger(Number(v)) && Number(v) >= 1 ? undefined : 'must be a positive integer');

export const command: CommandSpec = {
  name: 'sim',
  summary:
    'simulate whole federations in one process: sweeps over epsilon, rounds, institutions, dropout, models and seeds, with local-only, centralised and federated baselines scored on the same held-out rows',
  usage: 'dpfed sim --data FILE.csv|synthetic:fraud --out DIR [flags]      dpfed sim merge --out DIR SHARD_DIR...',
  flags: [
    {
      name: 'data',
      type: 'string',
      required: true,
      help: 'CSV of all rows to deal out to the institutions, or synthetic:fraud[:ROWS[:SEED]] (N banks with 0.2-2 % fraud each, feature and label shift per bank, heavy-tailed amounts; simulations/synthetic-fraud.ts)',
    },
    { name: 'label-column', type: 'string', default: 'label', help: 'the binary label column of --data' },
    {
      name: 'schema',
      type: 'string',
      help: 'public data schema of --data (JSON, as dpfed schema); without it one is inferred from the pooled rows, which a simulation accepts (no real budget is spent) but a real private run would refuse',
    },
    { name: 'split-column', type: 'string', help: 'natural split: one institution per distinct value of this column (a state, a hospital); the column is not a model input' },
    {
      name: 'institutions',
      type: 'list',
      default: ['5'],
      help: 'institutions to deal the rows out to (comma-separated list, each 1..1000; one value with --split-column, which fixes them, and with synthetic:fraud, whose banks they are)',
    },
    {
      name: 'split',
      type: 'string',
      default: 'iid',
      help: 'how rows are dealt out: iid, dirichlet:ALPHA (label skew), quantity:ALPHA (size skew); synthetic:fraud is split by bank unless --split is given',
    },
    {
      name: 'test-share',
      type: 'number',
      default: 0.2,
      help: 'share of all rows held out, before the split, as the common test rows every result is scored on',
      check: (v) => (Number(v) > 0 && Number(v) < 1 ? undefined : 'must be in (0, 1)'),
    },
    { name: 'epsilons', type: 'list', default: ['1', '4', 'inf'], help: 'target epsilons (comma-separated); inf = DP off (federated without DP is always run)' },
    { name: 'delta', type: 'number', default: 1e-5, help: 'target delta of the DP settings', check: (v) => (Number(v) > 0 && Number(v) < 1 ? undefined : 'must be in (0, 1)') },
    { name: 'rounds', type: 'list', default: ['5'], help: 'federated rounds (comma-separated list)' },
    { name: 'dropout', type: 'list', default: ['0'], help: 'fraction of institutions that sit out each round, chosen per round by the seed (comma-separated list)' },
    { name: 'models', type: 'list', default: ['mlp:64,32'], help: 'models: logistic, mlp:UNITS,UNITS (comma-separated; "logistic,mlp:64,32" is two models)' },
    {
      name: 'seeds',
      type: 'int',
      default: 1,
      help: 'seeds 1..N for every setting (the split, test rows, initialisation, sampling and dropouts; DP noise and masks always come from a CSPRNG)',
      check: positiveInt,
    },
    { name: 'privacy', type: 'list', default: ['record'], help: 'DP of the finite-epsilon settings: record, client (comma-separated list)' },
    { name: 'aggregation', type: 'list', default: ['secagg'], help: 'plain, secagg (comma-separated list; client-level DP needs secagg)' },
    { name: 'out', type: 'string', required: true, help: 'directory of results.csv and results.json' },
    { name: 'resume', type: 'boolean', help: 'skip settings whose id already has rows in <out>/results.csv' },
    {
      name: 'shard',
      type: 'string',
      help: 'run only slice I of N of the grid, as I/N, 0-based (the settings whose index mod N is I; a Kubernetes Indexed Job passes its JOB_COMPLETION_INDEX); combine shards with dpfed sim merge',
    },
    { name: 'workers', type: 'int', default: defaultWorkers(), help: 'worker threads running settings in parallel (default: one per core)', check: positiveInt },
    {
      name: 'setting-timeout',
      type: 'number',
      help: 'seconds a setting may run before it is stopped and recorded as failed (the sweep goes on; default: no limit)',
      check: (v) => (Number(v) > 0 && Number.isFinite(Number(v)) ? undefined : 'must be a positive number of seconds'),
    },
    {
      name: 'transport',
      type: 'string',
      default: DEFAULT_TRANSPORT,
      choices: TRANSPORTS,
      help: 'how the simulated institutions reach the coordinator: memory (in-memory links, no sockets) or grpc (plaintext gRPC on 127.0.0.1, as a check)',
    },
    {
      name: 'backend',
      type: 'string',
      default: 'wasm',
      choices: BACKEND_NAMES,
      help: 'TensorFlow.js backend of the simulated institutions: wasm (default, everywhere), cpu, tensorflow or tensorflow-gpu (need @tensorflow/tfjs-node or -node-gpu installed), auto (the fastest one present)',
    },
    { name: 'json', type: 'boolean', help: 'print one JSON summary on stdout (settings run and skipped, files, seconds, AUC mean and 95 % CI over seeds per setting)' },
    ...K8S_JOB_FLAGS,
    ...sharedRunFlagSpecs(),
  ],
  examples: [
    'dpfed sim --data data/creditcard_fraud_ulb_sample.csv --label-column label --schema data/creditcard_fraud_ulb_sample.schema.json \\\n      --institutions 5 --epsilons 1,4,8 --seeds 2 --out sim-out          # 3 epsilons x 2 seeds x 5 banks, under 2 minutes on 2 cores',
    'dpfed sim --data synthetic:fraud --institutions 10 --split dirichlet:0.5 --dropout 0,0.2 --rounds 5,10 --out sim-synth',
    'dpfed sim --data data/creditcard_fraud_ulb_sample.csv --label-column label --schema data/creditcard_fraud_ulb_sample.schema.json \\\n      --institutions 3,10,30 --epsilons 1,inf --out sim-scale     # how the same rows fare dealt out to 3, 10 or 30 banks',
    'dpfed sim --data hospitals.csv --label-column disease --split-column site --schema hospitals.schema.json --models logistic --out sim-sites',
    'dpfed sim ... --shard 0/4 --out shard-0   then   dpfed sim merge --out all shard-0 shard-1 shard-2 shard-3',
    'dpfed sim --data /data/fraud.csv --schema /data/fraud.schema.json --epsilons 0.5,1,2,4,8,inf --seeds 5 --out /results --emit-k8s-job sim-job.yaml --k8s-shards 8',
  ],
};

/** Each value of a list flag, comma-separated values split. */
function listValues(f: FlagValues, key: string): string[] {
  return (f[key] as string[])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}

function numbers(f: FlagValues, key: string, flag: string, ok: (v: number) => boolean, expected: string): number[] {
  const values = listValues(f, key).map(Number);
  if (values.length === 0 || values.some((v) => !ok(v))) throw new UsageError(`--${flag}: expected ${expected}, got "${listValues(f, key).join(',')}"`);
  return [...new Set(values)];
}

function choices<T extends string>(f: FlagValues, key: string, flag: string, allowed: readonly T[]): T[] {
  const values = listValues(f, key);
  const bad = values.filter((v) => !allowed.includes(v as T));
  if (values.length === 0 || bad.length) throw new UsageError(`--${flag}: expected ${allowed.join('|')} (comma-separated), got "${values.join(',')}"`);
  return [...new Set(values)] as T[];
}

/** The shared run flags as they were given, to pass on to every setting's run config. */
function trainingArgs(argv: string[]): string[] {
  const names = new Set<string>(SHARED_RUN_FLAGS);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2).split('=')[0] : '';
    if (!names.has(name)) continue;
    if (argv[i].includes('=')) out.push(argv[i]);
    else out.push(argv[i], argv[++i]);
  }
  return out;
}

function given(argv: string[], flag: string): boolean {
  return argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`));
}

function wrapDataError<T>(fn: () => Promise<T>): Promise<T> {
  return fn().catch((error: unknown) => {
    if (error instanceof SimDataError) throw new UsageError(error.message);
    throw error;
  });
}

async function sweep(f: FlagValues, argv: string[]): Promise<number> {
  const json = Boolean(f.json);
  const say = (line: string) => (json ? process.stderr : process.stdout).write(line + '\n');
  let epsilons: (number | null)[];
  let models: string[];
  let shard: { index: number; count: number } | undefined;
  try {
    epsilons = parseEpsilons(listValues(f, 'epsilons'));
  } catch (error) {
    throw new UsageError(`--epsilons: ${(error as Error).message}`);
  }
  try {
    models = parseModels(listValues(f, 'models'));
  } catch (error) {
    throw new UsageError(`--models: ${(error as Error).message}`);
  }
  if (f.shard !== undefined) {
    try {
      shard = parseShard(String(f.shard));
    } catch (error) {
      throw new UsageError(`--shard: ${(error as Error).message}`);
    }
  }
  const rounds = numbers(f, 'rounds', 'rounds', (v) => Number.isInteger(v) && v >= 1, 'positive integers');
  const institutionCounts = numbers(f, 'institutions', 'institutions', (v) => Number.isInteger(v) && v >= 1 && v <= 1000, 'integers in 1..1000');
  if (institutionCounts.length > 1 && (f.splitColumn !== undefined || String(f.data).startsWith('synthetic:'))) {
    throw new UsageError(
      `--institutions: ${f.splitColumn !== undefined ? '--split-column fixes the institutions (one per value)' : 'synthetic:fraud makes one bank per institution'}, so it takes one value, got "${institutionCounts.join(',')}"`,
    );
  }
  const dropout = numbers(f, 'dropout', 'dropout', (v) => v >= 0 && v < 1, 'fractions in [0, 1)');
  const privacy = choices(f, 'privacy', 'privacy', ['record', 'client'] as const);
  const aggregation = choices(f, 'aggregation', 'aggregation', ['plain', 'secagg'] as const);
  if (f.splitColumn !== undefined && given(argv, 'split')) throw new UsageError('--split-column: the natural split replaces --split; give one of the two');
  let split = f.splitColumn !== undefined ? `column:${f.splitColumn}` : String(f.split);
  if (f.splitColumn === undefined) {
    try {
      split = splitName(parseSplit(split));
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  if (f.emitK8sJob !== undefined) return emitJob(f, podArgs(argv, command.flags));
  const schema = schemaFromFlag(f.schema);
  const { data, identity } = await wrapDataError(() =>
    loadSimInputs({
      data: String(f.data),
      labelColumn: String(f.labelColumn),
      schema,
      splitColumn: f.splitColumn as string | undefined,
      institutions: institutionCounts[0],
    }),
  );
  if (String(f.data).startsWith('synthetic:') && !given(argv, 'split')) split = 'column:bank';
  const counts = split.startsWith('column:') ? [data.groupNames!.length] : institutionCounts;
  if (data.schemaInferred)
    process.stderr.write(
      `dpfed sim: no --schema: the preprocessing bounds are inferred from the pooled rows of ${f.data}; acceptable for a simulation (no real budget is spent), refused by a real private run\n`,
    );
  for (const institutions of counts) {
    if (aggregation.includes('secagg') && institutions < 3) {
      throw new UsageError(
        `${split.startsWith('column:') ? '--split-column' : '--institutions'}: secure aggregation needs at least 3 institutions, the split gives ${institutions} (or use --aggregation plain)`,
      );
    }
    for (const d of dropout) {
      const present = institutions - droppedPerRound(institutions, d);
      if (present < 1) throw new UsageError(`--dropout: ${d} of ${institutions} institutions leaves none in a round`);
      if (aggregation.includes('secagg') && present < 3)
        throw new UsageError(`--dropout: ${d} of ${institutions} institutions leaves ${present} per round; secure aggregation needs at least 3 (raise --institutions or use --aggregation plain)`);
    }
  }
  const spec: SweepSpec = {
    data: identity,
    split,
    institutions: counts,
    testShare: Number(f.testShare),
    epsilons,
    delta: Number(f.delta),
    rounds,
    dropout,
    models,
    seeds: Array.from({ length: Number(f.seeds) }, (_, k) => k + 1),
    privacy,
    aggregation,
    trainingArgs: trainingArgs(argv),
  };
  const outDir = resolve(String(f.out));
  if (existsSync(outDir) && !statSync(outDir).isDirectory()) throw new UsageError(`--out: ${outDir} is not a directory`);
  let summary: SweepSummary;
  let progress: SimProgress | undefined;
  try {
    summary = await runSweep({
      data,
      spec,
      outDir,
      shard,
      resume: Boolean(f.resume),
      workers: Number(f.workers),
      settingTimeoutMs: f.settingTimeout === undefined ? undefined : Number(f.settingTimeout) * 1000,
      transport: f.transport as TransportName,
      backend: f.backend as BackendName,
      onStart: (jobs) => {
        say(`sim: ${jobs.length} settings to run on ${Math.min(Number(f.workers), Math.max(1, jobs.length))} worker threads (${data.n} rows, ${counts.join(' or ')} institutions, split ${split})`);
        progress = createSimProgress(jobs.length);
      },
      onJob: (job, rows, error) => {
        const s = job.setting;
        const what = `${s.baseline}${s.privacy !== 'off' ? ` ${s.privacy} eps ${s.epsilon}` : ''} ${s.model} rounds ${s.rounds}${s.baseline === 'federated' ? ` dropout ${s.dropout} ${s.aggregation}` : ''} seed ${s.seed}`;
        if (error) process.stderr.write(`sim: setting ${job.id} (${what}) failed: ${error.split('\n')[0]}\n`);
        // e.g. client-level DP with dropouts: a round with fewer institutions carries less noise, and the
        // coordinator stops the run before a round would pass the run's ε target
        const short = rows.find((r) => r.baseline === 'federated' && r.aucPerRound.length < r.rounds);
        if (short)
          process.stderr.write(`sim: setting ${job.id} (${what}) committed ${short.aucPerRound.length} of ${short.rounds} rounds; its figures are those of round ${short.aucPerRound.length}\n`);
        const test = rows.filter((r) => r.scoredOn === 'test');
        const auc = test.length ? test.reduce((a, r) => a + r.auc, 0) / test.length : Number.NaN;
        progress?.tick(error ? `${what}: failed` : `${what}: AUC ${auc.toFixed(4)}${test.length > 1 ? ` (mean of ${test.length})` : ''}`);
      },
    });
  } catch (error) {
    if (error instanceof SimDataError) throw new UsageError(error.message);
    if (error instanceof ExistingResultsError) throw new UsageError(`--out: ${error.message}`);
    if (error instanceof ResultsFileError) throw new UsageError(`--resume: ${error.message}`);
    throw error;
  } finally {
    progress?.stop();
  }
  for (const r of summary.refused) process.stderr.write(`sim: left out: ${r}\n`);
  const plots = await drawPlots(outDir, readResults(outDir), 'dpfed sim');
  summary.files.push(...(plots ?? []));
  if (json) process.stdout.write(JSON.stringify(summary) + '\n');
  else say(`sim: ${summary.run} settings run, ${summary.skipped} skipped, ${summary.failed.length} failed in ${summary.seconds.toFixed(1)} s; ${summary.rows} rows in ${summary.files.join(', ')}`);
  return summary.failed.length || !plots ? 1 : 0;
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'merge') {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(renderHelp(mergeCommand));
      return 0;
    }
    return mergeMain(argv.slice(1));
  }
  return runCommand(command, argv, (f) => sweep(f, argv));
}
