// `dpfed bench` (npm run bench): speed figures as one JSON object on stdout. Every ratio is measured
// against its baseline in the same run, since these machines are noisy.
import { runCommand, type CommandSpec } from './flags.ts';

export const command: CommandSpec = {
  name: 'bench',
  summary: 'measure round overhead, aggregation, training, DP-SGD, accountant, secure aggregation and CKKS; prints one JSON object',
  flags: [
    { name: 'only', type: 'list', help: 'run only these groups: rounds, aggregation, training, accountant, secagg, ckks, large-model' },
    { name: 'quick', type: 'boolean', help: 'fewer repetitions (for smoke runs)' },
  ],
};

type Group = { name: string; run: (quick: boolean) => Promise<Record<string, unknown>> };

const GROUPS: Group[] = [
  { name: 'rounds', run: async (quick) => (await import('../bench/round-overhead-bench.ts')).benchRoundOverhead({ quick }) as never },
  { name: 'aggregation', run: async () => (await import('../bench/aggregation-bench.ts')).benchAggregation() as never },
  { name: 'training', run: async () => (await import('../bench/training-bench.ts')).benchTraining() as never },
  { name: 'accountant', run: async () => (await import('../bench/accountant-bench.ts')).benchAccountant() as never },
  {
    name: 'secagg',
    run: async () => {
      const local = await (await import('../bench/local-round-training.ts')).measureLocalRoundMs();
      const secagg = await (await import('../bench/secagg-bench.ts')).benchSecAgg({ trainingMs: local.localRoundMs });
      return { ...local, ...secagg } as never;
    },
  },
  { name: 'ckks', run: async () => (await import('../bench/ckks-bench.ts')).benchCkks() as never },
  { name: 'large-model', run: async (quick) => (await import('../bench/large-model-bench.ts')).benchLargeModel({ units: quick ? 4096 : 12288 }) as never },
];

export async function main(argv: string[]): Promise<number> {
  return runCommand(command, argv, async (f) => {
    const only = (f.only as string[]).length ? new Set(f.only as string[]) : null;
    const result: Record<string, unknown> = { machine: { node: process.version, cpus: (await import('node:os')).cpus().length } };
    for (const group of GROUPS) {
      if (only && !only.has(group.name)) continue;
      process.stderr.write(`bench: ${group.name}…\n`);
      const t0 = performance.now();
      try {
        Object.assign(result, await group.run(Boolean(f.quick)));
      } catch (error) {
        result[`${group.name}Error`] = (error as Error).message;
      }
      process.stderr.write(`bench: ${group.name} took ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    }
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  });
}
