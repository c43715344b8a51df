// `dpfed predict`: scores a CSV with an exported model, one probability per row in file order.
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { CsvError } from '@dpfed/client/csv-dataset';
import { scoreCsv } from '@dpfed/client/model-file';
import { runCommand, UsageError, type CommandSpec } from '@dpfed/proto/command-flags';
import { loadModelFromFlags, MODEL_FLAGS } from './model-flags.ts';

export const command: CommandSpec = {
  name: 'predict',
  summary: 'score a CSV with an exported model: one probability per row, in order',
  flags: [
    ...MODEL_FLAGS,
    { name: 'out', type: 'string', required: true, help: 'scores CSV to write (columns: [id,] score); written whole or not at all' },
    { name: 'id-column', type: 'string', help: 'a column of the CSV copied into the output as the row id (default: the id column named at export, if any)' },
  ],
  examples: ['dpfed predict --model model/ --data applicants.csv --out scores.csv --id-column application_id'],
};

function csvCell(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(command, argv, async (f) => {
    const model = await loadModelFromFlags(f);
    const out = String(f.out);
    const idColumn = (f.idColumn as string | undefined) ?? model.preprocessing.idColumn ?? undefined;
    const staging = `${out}.tmp-${process.pid}`;
    let fd: number;
    try {
      fd = openSync(staging, 'w');
    } catch (error) {
      throw new UsageError(`--out: cannot write ${out}: ${(error as Error).message}`);
    }
    let rows: number;
    try {
      writeSync(fd, idColumn !== undefined ? `${csvCell(idColumn)},score\n` : 'score\n');
      rows = await scoreCsv(model, String(f.data), { idColumn }, (batch) => {
        writeSync(fd, batch.map((r) => (idColumn !== undefined ? `${csvCell(r.id ?? '')},${r.score}` : String(r.score))).join('\n') + '\n');
      });
      closeSync(fd);
      renameSync(staging, out);
    } catch (error) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
      rmSync(staging, { force: true });
      if (error instanceof CsvError) throw new UsageError(`--data: ${error.message}`);
      throw error;
    }
    process.stderr.write(`dpfed predict: ${rows} rows scored with run ${model.card.runId} round ${model.card.round} (model ${model.card.modelHash.slice(0, 16)}…) into ${out}\n`);
    return 0;
  });
}
