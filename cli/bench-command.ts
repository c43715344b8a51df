// `dpfed bench` (npm run bench): speed figures as one JSON object on stdout. Every ratio is measured
// against its baseline in the same run, since these machines are noisy.
import { runCommand, UsageError, type CommandSpec } from '@dpfed/proto/command-flags';

export const command: CommandSpec = {
  name: 'bench',
  summary:
    'measure round overhead, aggregation, training, DP-SGD, accountant, secure aggregation, CKKS, client data memory, the compliance console, 50 institutions under load, dpfed sim and the client-only install size; prints one JSON object',
  flags: [
    {
      name: 'only',
      type: 'list',
      help: 'run only these groups (repeat the flag or separate by commas): rounds, aggregation, training, accountant, secagg, ckks, large-model, client-memory, console, load50, sim, in-memory, install',
    },
    {
      name: 'load50-learner',
      type: 'string',
      choices: ['tfjs', 'none'],
      help: "load50: the institutions' learner: tfjs (TfjsLearner on card-fraud slices, record DP; the default) or none (no training, privacy off; the default with --quick)",
    },
    { name: 'quick', type: 'boolean', help: 'fewer repetitions (for smoke runs)' },
  ],
};

/**
 * A module of the bench package (bench/, `@dpfed/bench`). The bench is part of the source repository, not
 * of the published dpfed package, and it imports the CLI's flag parsing itself, so the CLI reaches it
 * through a specifier computed at run time, never a static import (which would make the two packages
 * depend on each other). Outside the repository it is absent, and `dpfed bench` says so.
 */
// biome-ignore lint/suspicious/noExplicitAny: each group calls its own module's function
async function benchModule(name: string): Promise<Record<string, (...args: any[]) => Promise<any>>> {
  const specifier = `@dpfed/bench/${name}`;
  try {
    return (await import(specifier)) as never;
  } catch (error) {
    const e = error as { code?: string; message?: string };
    if (e?.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('@dpfed/bench')) {
      throw new Error('the bench runs from a dpfed source repository (npm run bench there); it is not part of the installed dpfed package', { cause: error });
    }
    throw error;
  }
}

type Group = { name: string; run: (quick: boolean, flags: Record<string, unknown>) => Promise<Record<string, unknown>> };

const GROUPS: Group[] = [
  { name: 'rounds', run: async (quick) => (await benchModule('round-overhead-bench')).benchRoundOverhead({ quick }) as never },
  { name: 'aggregation', run: async () => (await benchModule('aggregation-bench')).benchAggregation() as never },
  { name: 'training', run: async () => (await benchModule('training-bench')).benchTraining() as never },
  { name: 'accountant', run: async () => (await benchModule('accountant-bench')).benchAccountant() as never },
  {
    name: 'secagg',
    run: async () => {
      const local = await (await benchModule('local-round-training')).measureLocalRoundMs();
      const secagg = await (await benchModule('secagg-bench')).benchSecAgg({ trainingMs: local.localRoundMs });
      return { ...local, ...secagg } as never;
    },
  },
  { name: 'ckks', run: async () => (await benchModule('ckks-bench')).benchCkks() as never },
  { name: 'client-memory', run: async (quick) => (await benchModule('client-memory-bench')).benchClientMemory({ rows: quick ? 200_000 : 1_000_000 }) as never },
  { name: 'large-model', run: async (quick) => (await benchModule('large-model-bench')).benchLargeModel({ units: quick ? 4096 : 12288 }) as never },
  { name: 'load50', run: async (quick, f) => (await benchModule('load50-bench')).benchLoad50({ quick, learner: f.load50Learner as 'tfjs' | 'none' | undefined }) },
  { name: 'sim', run: async (quick) => (await benchModule('sim-bench')).benchSim({ quick }) as never },
  { name: 'in-memory', run: async (quick) => (await benchModule('in-memory-bench')).benchInMemory({ quick }) as never },
  { name: 'install', run: async () => (await benchModule('install-size-bench')).benchInstallSize() as never },
  { name: 'console', run: async (quick) => (await benchModule('console-bench')).benchConsole(quick ? { institutions: 20, events: 200, repeats: 10 } : {}) as never },
];

export async function main(argv: string[]): Promise<number> {
  return runCommand(command, argv, async (f) => {
    // --only a --only b, or --only a,b; an unknown group is refused (it would print an empty object)
    const wanted = (f.only as string[])
      .flatMap((v) => v.split(','))
      .map((v) => v.trim())
      .filter(Boolean);
    const unknown = wanted.filter((name) => !GROUPS.some((g) => g.name === name));
    if (unknown.length) throw new UsageError(`--only: unknown group ${unknown.map((u) => `"${u}"`).join(', ')}; the groups are ${GROUPS.map((g) => g.name).join(', ')}`);
    const only = wanted.length ? new Set(wanted) : null;
    const result: Record<string, unknown> = { machine: { node: process.version, cpus: (await import('node:os')).cpus().length } };
    for (const group of GROUPS) {
      if (only && !only.has(group.name)) continue;
      process.stderr.write(`bench: ${group.name}…\n`);
      const t0 = performance.now();
      try {
        Object.assign(result, await group.run(Boolean(f.quick), f));
      } catch (error) {
        result[`${group.name}Error`] = (error as Error).message;
      }
      process.stderr.write(`bench: ${group.name} took ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    }
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  });
}
