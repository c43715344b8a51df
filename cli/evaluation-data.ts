// `--evaluation-data FILE`: the coordinator's own labelled rows, scored with the same network code the
// institutions run (client-sdk/local-trainer.ts). The rows are preprocessed as the institutions preprocess
// theirs: by the run's public data schema (`--evaluation-schema`, the file the institutions use with
// `dpfed client --schema`). Without it the schema is inferred from the coordinator's own file (its bounds
// are that file's minimum and maximum, so the scaling can differ from the institutions'; a warning says so).
import type { CandidateEvaluator } from '@dpfed/coordinator/candidate-evaluator';
import { streamCsv, type Dataset } from '@dpfed/client/csv-dataset';
import { inferSchema } from '@dpfed/client/schema-inference';
import { selectBackend } from '@dpfed/client/tf-backend';
import { compileSchema, describeHeaderMismatch, labelColumn as schemaLabelColumn, mapFeature, readSchemaFile, type DataSchema } from '@dpfed/proto/data-schema';
import type { ModelSpec } from '@dpfed/proto/model-spec';
import { UsageError } from '@dpfed/proto/command-flags';
import { rowsEvaluator } from '@dpfed/simulations/test-rows-evaluator';

/** Every row of `path`, mapped by `schema` (no train/validation split: the coordinator's rows are all for scoring). */
async function loadScoringRows(path: string, schema: DataSchema): Promise<Dataset> {
  const { featureNames, maps, labelIndex, featureIndex } = compileSchema(schema);
  const dim = maps.length;
  const x: number[] = [];
  const y: number[] = [];
  await streamCsv(path, {
    header(cells) {
      const mismatch = describeHeaderMismatch(schema, cells);
      if (mismatch) throw new Error(`${path}: line 1: the header does not match the schema: ${mismatch}`);
    },
    row(cells, line) {
      const cell = cells[labelIndex];
      const label = cell === '1' || cell === '1.0' ? 1 : cell === '0' || cell === '0.0' ? 0 : -1;
      if (label < 0) throw new Error(`${path}: line ${line}: the label must be 0 or 1`);
      const features = new Array<number>(dim);
      for (let i = 0; i < cells.length; i++) {
        const k = featureIndex[i];
        if (k < 0) continue;
        const value = cells[i] === '' ? Number.NaN : Number(cells[i]);
        if (cells[i] !== '' && !Number.isFinite(value)) throw new Error(`${path}: line ${line}: a feature is not a finite number`);
        features[k] = mapFeature(maps[k], value);
      }
      x.push(...features);
      y.push(label);
    },
  });
  return { featureNames, x: Float32Array.from(x), y: Float32Array.from(y), n: y.length, dim };
}

/**
 * Loads the file (refusing it with a UsageError naming the flag) and returns an evaluator for `spec`.
 * `schemaPath`: the run's public schema; absent, one is inferred from the file and `warn` is told.
 */
export async function evaluationDataEvaluator(path: string, labelColumn: string, spec: ModelSpec, o: { schemaPath?: string; warn?: (line: string) => void } = {}): Promise<CandidateEvaluator> {
  let schema: DataSchema;
  try {
    schema = o.schemaPath ? readSchemaFile(o.schemaPath) : await inferSchema(path, labelColumn);
  } catch (error) {
    throw new UsageError(`${o.schemaPath ? '--evaluation-schema' : '--evaluation-data'}: ${(error as Error).message}`);
  }
  if (o.schemaPath && schemaLabelColumn(schema).name !== labelColumn) {
    throw new UsageError(`--evaluation-label-column: "${labelColumn}" differs from the schema's label column "${schemaLabelColumn(schema).name}"`);
  }
  if (!o.schemaPath) o.warn?.(`--evaluation-data: no --evaluation-schema; the scaling is inferred from ${path} itself and can differ from the institutions' public schema`);
  let data: Dataset;
  try {
    data = await loadScoringRows(path, schema);
  } catch (error) {
    throw new UsageError(`--evaluation-data: ${(error as Error).message}`);
  }
  if (data.dim !== spec.inputDim) throw new UsageError(`--evaluation-data: ${path} has ${data.dim} feature columns, the model expects ${spec.inputDim} (--features)`);
  let positives = 0;
  for (let i = 0; i < data.n; i++) positives += data.y[i];
  if (positives === 0 || positives === data.n) throw new UsageError(`--evaluation-data: ${path} needs rows of both classes in column "${labelColumn}" for an AUC`);
  const { tf } = await selectBackend('auto');
  return rowsEvaluator(tf, spec, data, path, 'evaluation data');
}
