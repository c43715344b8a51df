// Reads an exported model folder (proto/model-file-format.ts) and scores rows with it: the file hashes are
// checked against SHA256SUMS and the card's model hash before anything is used, the network is loaded by
// tf.loadLayersModel from the verified bytes, and every row goes through the folder's public schema (the
// same fixed map the institutions trained with, proto/data-schema.ts) before the network sees it.
//
// A CSV to score must hold every feature column of the schema (by name, in any order); it may hold the
// label column and an id column; any other column is refused, as is a missing one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LayersModel } from './tfjs.ts';
import { classificationReport, type ClassificationReport } from './classification-metrics.ts';
import { CsvError, streamCsv, type CsvSource } from './csv-dataset.ts';
import { selectBackend } from './tf-backend.ts';
import { compileSchema, labelColumn, mapFeature, parseSchema, schemaHash, type DataSchema, type FeatureMap } from '@dpfed/proto/data-schema';
import { MODEL_CARD_JSON, MODEL_JSON, modelHashOf, parseSums, PREPROCESSING_JSON, sha256Hex, SHA256SUMS, WEIGHTS_BIN, type ModelCard, type PreprocessingFile } from '@dpfed/proto/model-file-format';
import { quoted } from '@dpfed/proto/text-excerpt';

type Tf = typeof import('./tfjs.ts');

export class ModelFileError extends Error {}

export interface LoadedModel {
  dir: string;
  card: ModelCard;
  preprocessing: PreprocessingFile;
  schema: DataSchema;
  featureNames: string[];
  maps: FeatureMap[];
  network: LayersModel;
  tf: Tf;
}

function readVerified(dir: string, file: string, sums: Map<string, string>): Buffer {
  const expected = sums.get(file);
  if (!expected) throw new ModelFileError(`${dir}: ${SHA256SUMS} does not list ${file}`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(dir, file));
  } catch (error) {
    throw new ModelFileError(`${dir}: cannot read ${file}: ${(error as Error).message}`);
  }
  if (sha256Hex(bytes) !== expected) throw new ModelFileError(`${dir}: ${file} does not match its hash in ${SHA256SUMS} (the file was changed or damaged)`);
  return bytes;
}

function parseJson<T>(dir: string, file: string, bytes: Buffer): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (error) {
    throw new ModelFileError(`${dir}: ${file} is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * Loads and verifies a model folder. `schema` stands in for the folder's preprocessing when the export was
 * given none (else it must equal it). `tf` defaults to TensorFlow.js (tfjs.ts) on its cpu backend.
 */
export async function loadModel(dir: string, o: { tf?: Tf; schema?: DataSchema } = {}): Promise<LoadedModel> {
  let sumsText: string;
  try {
    sumsText = readFileSync(join(dir, SHA256SUMS), 'utf8');
  } catch (error) {
    throw new ModelFileError(`${dir}: not a dpfed model folder (cannot read ${SHA256SUMS}: ${(error as Error).message})`);
  }
  let sums: Map<string, string>;
  try {
    sums = parseSums(sumsText);
  } catch (error) {
    throw new ModelFileError(`${dir}: ${(error as Error).message}`);
  }
  const modelJsonBytes = readVerified(dir, MODEL_JSON, sums);
  const weights = readVerified(dir, WEIGHTS_BIN, sums);
  const preprocessingBytes = readVerified(dir, PREPROCESSING_JSON, sums);
  const card = parseJson<ModelCard>(dir, MODEL_CARD_JSON, readVerified(dir, MODEL_CARD_JSON, sums));
  const modelHash = modelHashOf({ [MODEL_JSON]: sha256Hex(modelJsonBytes), [WEIGHTS_BIN]: sha256Hex(weights), [PREPROCESSING_JSON]: sha256Hex(preprocessingBytes) });
  if (card.modelHash !== modelHash)
    throw new ModelFileError(`${dir}: the model hash in ${MODEL_CARD_JSON} (${String(card.modelHash).slice(0, 16)}…) does not match the model's files (${modelHash.slice(0, 16)}…)`);
  const preprocessing = parseJson<PreprocessingFile>(dir, PREPROCESSING_JSON, preprocessingBytes);

  let schema: DataSchema;
  if (preprocessing.schema === null) {
    if (!o.schema) throw new ModelFileError(`${dir}: the model was exported without a data schema; give the schema its institutions used (--schema)`);
    schema = o.schema;
  } else {
    try {
      schema = parseSchema(preprocessing.schema, `${dir}/${PREPROCESSING_JSON}`);
    } catch (error) {
      throw new ModelFileError((error as Error).message);
    }
    if (o.schema && schemaHash(o.schema) !== schemaHash(schema))
      throw new ModelFileError(`${dir}: the given schema differs from the model's own preprocessing (schema hash ${schemaHash(o.schema).slice(0, 16)}… vs ${schemaHash(schema).slice(0, 16)}…)`);
  }
  const { featureNames, maps } = compileSchema(schema);

  const tf = o.tf ?? (await selectBackend('cpu')).tf;
  const modelJson = parseJson<{
    modelTopology: object;
    format?: string;
    generatedBy?: string;
    convertedBy?: string | null;
    weightsManifest: { paths: string[]; weights: import('./tfjs.ts').io.WeightsManifestEntry[] }[];
  }>(dir, MODEL_JSON, modelJsonBytes);
  if (!Array.isArray(modelJson.weightsManifest) || modelJson.weightsManifest.length !== 1) throw new ModelFileError(`${dir}: ${MODEL_JSON}: expected one weights group`);
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer;
  let network: LayersModel;
  try {
    network = await tf.loadLayersModel({
      load: async () => ({
        modelTopology: modelJson.modelTopology,
        format: modelJson.format,
        generatedBy: modelJson.generatedBy,
        convertedBy: modelJson.convertedBy ?? undefined,
        weightSpecs: modelJson.weightsManifest[0].weights,
        weightData,
      }),
    });
  } catch (error) {
    throw new ModelFileError(`${dir}: ${MODEL_JSON}: TensorFlow.js cannot load it: ${(error as Error).message}`);
  }
  const inputs = network.inputs[0].shape[1];
  if (inputs !== featureNames.length) throw new ModelFileError(`${dir}: the network takes ${inputs} inputs, the schema has ${featureNames.length} feature columns`);
  return { dir, card, preprocessing, schema, featureNames, maps, network, tf };
}

/** Scores preprocessed inputs (row-major, rows × features): the model's probabilities. */
export function scoreInputs(model: LoadedModel, x: Float32Array, rows: number): Float32Array {
  if (rows === 0) return new Float32Array(0);
  const { tf, network } = model;
  return tf
    .tidy(() => {
      const out = network.predict(tf.tensor2d(x, [rows, model.featureNames.length])) as import('./tfjs.ts').Tensor;
      return out.dataSync() as Float32Array;
    })
    .slice();
}

/** Maps raw rows through the schema: each row an object by column name, or an array in feature order. NaN or absent = missing. */
export function preprocessRows(model: LoadedModel, rows: readonly (readonly number[] | Readonly<Record<string, number>>)[]): Float32Array {
  const dim = model.featureNames.length;
  const x = new Float32Array(rows.length * dim);
  rows.forEach((row, r) => {
    if (Array.isArray(row) && row.length !== dim) throw new ModelFileError(`row ${r}: expected ${dim} feature values, got ${row.length}`);
    for (let k = 0; k < dim; k++) {
      const raw = Array.isArray(row) ? row[k] : (row as Record<string, number>)[model.featureNames[k]];
      x[r * dim + k] = mapFeature(model.maps[k], raw === undefined ? Number.NaN : raw);
    }
  });
  return x;
}

/** The model's probability for each raw row (preprocessed by the model's schema first). */
export function predict(model: LoadedModel, rows: readonly (readonly number[] | Readonly<Record<string, number>>)[]): Float32Array {
  return scoreInputs(model, preprocessRows(model, rows), rows.length);
}

export interface ScoredRow {
  /** 1-based CSV line. */
  line: number;
  id: string | undefined;
  label: number | undefined;
  score: number;
}

export interface CsvScoring {
  /** Column whose cell is carried into each ScoredRow (default: the preprocessing's id column). */
  idColumn?: string;
  /** Column of 0/1 labels to read (must be present); default: the schema's label column if the CSV has it. */
  labelColumn?: string;
  /** Rows per forward pass. */
  batchRows?: number;
}

/** Streams a CSV through the schema and the network, handing over scored rows in file order, a batch at a time; returns the row count. */
export async function scoreCsv(model: LoadedModel, source: CsvSource, o: CsvScoring, onBatch: (rows: ScoredRow[]) => void): Promise<number> {
  const name = typeof source === 'string' ? source : source.name;
  const dim = model.featureNames.length;
  const batchRows = o.batchRows ?? 4096;
  const idName = o.idColumn ?? model.preprocessing.idColumn ?? undefined;
  const schemaLabel = labelColumn(model.schema).name;
  let featureAt: Int32Array = new Int32Array(0);
  let idAt = -1;
  let labelAt = -1;
  let labelName = o.labelColumn ?? schemaLabel;
  const x = new Float32Array(batchRows * dim);
  let pending: ScoredRow[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const scores = scoreInputs(model, x.subarray(0, pending.length * dim), pending.length);
    pending.forEach((row, i) => (row.score = scores[i]));
    onBatch(pending);
    pending = [];
  };
  const rows = await streamCsv(source, {
    header(cells) {
      const index = new Map(cells.map((c, i) => [c, i]));
      const absent = model.featureNames.filter((f) => !index.has(f));
      if (o.labelColumn !== undefined && !index.has(o.labelColumn)) absent.push(o.labelColumn);
      if (idName !== undefined && o.idColumn !== undefined && !index.has(idName)) absent.push(idName);
      const known = new Set([...model.featureNames, schemaLabel, labelName, ...(idName === undefined ? [] : [idName])]);
      const extra = cells.filter((c) => !known.has(c));
      const problems: string[] = [];
      if (absent.length)
        problems.push(
          `absent: ${absent
            .slice(0, 8)
            .map((c) => quoted(c, 60))
            .join(', ')}${absent.length > 8 ? ', …' : ''}`,
        );
      if (extra.length)
        problems.push(
          `not in the model's preprocessing: ${extra
            .slice(0, 8)
            .map((c) => quoted(c, 60))
            .join(', ')}${extra.length > 8 ? ', …' : ''}`,
        );
      if (cells.length !== index.size) problems.push('a column name appears twice');
      if (problems.length) throw new CsvError(`${name}: line 1: the header does not match the model's preprocessing (${problems.join('; ')})`);
      featureAt = Int32Array.from(model.featureNames, (f) => index.get(f)!);
      idAt = idName !== undefined && index.has(idName) ? index.get(idName)! : -1;
      labelAt = index.has(labelName) ? index.get(labelName)! : -1;
      if (labelAt < 0) labelName = '';
    },
    row(cells, line) {
      const r = pending.length;
      for (let k = 0; k < dim; k++) {
        const cell = cells[featureAt[k]];
        let value = Number.NaN;
        if (cell !== '') {
          value = Number(cell);
          if (!Number.isFinite(value)) throw new CsvError(`${name}: line ${line}, column ${quoted(model.featureNames[k], 60)}: ${quoted(cell)} is not a finite number`);
        }
        x[r * dim + k] = mapFeature(model.maps[k], value);
      }
      let label: number | undefined;
      if (labelAt >= 0) {
        const cell = cells[labelAt];
        label = cell === '0' || cell === '0.0' ? 0 : cell === '1' || cell === '1.0' ? 1 : -1;
        if (label < 0) throw new CsvError(`${name}: line ${line}, column ${quoted(labelName, 60)}: expected 0 or 1, got ${quoted(cell)}`);
      }
      pending.push({ line, id: idAt >= 0 ? cells[idAt] : undefined, label, score: Number.NaN });
      if (pending.length === batchRows) flush();
    },
  });
  flush();
  return rows;
}

export interface EvaluateOptions {
  /** Label column of the CSV (default: the schema's label column). */
  labelColumn?: string;
  threshold?: number;
  bins?: number;
}

/** Scores a labelled CSV and reports AUC, PR-AUC, log loss, threshold metrics and calibration. */
export async function evaluate(model: LoadedModel, data: CsvSource, o: EvaluateOptions = {}): Promise<ClassificationReport> {
  const scores: number[] = [];
  const labels: number[] = [];
  const labelName = o.labelColumn ?? labelColumn(model.schema).name;
  await scoreCsv(model, data, { labelColumn: labelName }, (rows) => {
    for (const r of rows) {
      scores.push(r.score);
      labels.push(r.label!);
    }
  });
  return classificationReport(Float64Array.from(scores), Float64Array.from(labels), { threshold: o.threshold, bins: o.bins });
}
