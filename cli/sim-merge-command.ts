// `dpfed sim merge --out DIR SHARD_DIR...`: the results of shards (`dpfed sim --shard I/N`) as one
// results.csv / results.json (one row per setting, baseline, institution and scoring; the first shard
// that has a row wins), and the plots of them all.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { mergeRows, readResults, RESULTS_CSV, writeResults } from '@dpfed/simulations/sim-results-file';
import { type CommandSpec, runCommand, UsageError } from '@dpfed/proto/command-flags';
import { drawPlots } from './sim-plot-output.ts';

export const mergeCommand: CommandSpec = {
  name: 'sim merge',
  summary: 'combine the results of shards (one row per setting, baseline, institution and scoring) and draw their plots',
  usage: 'dpfed sim merge --out DIR SHARD_DIR...',
  flags: [
    { name: 'out', type: 'string', required: true, help: 'directory to write the combined results.csv and results.json to' },
    { name: 'json', type: 'boolean', help: 'print one JSON summary on stdout' },
  ],
};

export async function mergeMain(argv: string[]): Promise<number> {
  const dirs: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') rest.push(argv[i], argv[++i]);
    else if (argv[i].startsWith('--')) rest.push(argv[i]);
    else dirs.push(argv[i]);
  }
  return runCommand(mergeCommand, rest, async (f) => {
    if (dirs.length === 0) throw new UsageError('SHARD_DIR: give at least one shard directory to merge');
    const sets = dirs.map((dir) => {
      if (!existsSync(resolve(dir, RESULTS_CSV))) throw new UsageError(`SHARD_DIR: ${dir} has no ${RESULTS_CSV}`);
      try {
        return readResults(resolve(dir));
      } catch (error) {
        throw new UsageError(`SHARD_DIR: ${(error as Error).message}`);
      }
    });
    const rows = mergeRows(sets);
    const files = writeResults(resolve(String(f.out)), rows);
    const plots = await drawPlots(resolve(String(f.out)), rows, 'dpfed sim merge');
    files.push(...(plots ?? []));
    const summary = { shards: dirs.length, rows: rows.length, settings: new Set(rows.map((r) => r.settingId)).size, outDir: resolve(String(f.out)), files };
    if (f.json) process.stdout.write(JSON.stringify(summary) + '\n');
    else process.stdout.write(`sim merge: ${summary.rows} rows of ${summary.settings} settings from ${dirs.length} shards in ${files.join(', ')}\n`);
    return plots ? 0 : 1;
  });
}
