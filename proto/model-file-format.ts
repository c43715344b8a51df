// The exported model's folder, shared by the side that writes it (coordinator/model-export.ts) and the side
// that reads it (client-sdk/model-file.ts):
//   model.json          TensorFlow.js Layers format (topology + weights manifest), tf.loadLayersModel reads it
//   weights.bin         the float32 weights the manifest names
//   preprocessing.json  the public data schema (proto/data-schema.ts) the inputs go through, plus its hash
//   model-card.json     what the model is: run, round, strategy, privacy, ε per institution, metrics
//   SHA256SUMS          `<sha256 hex>  <file>` per file above, in `sha256sum -c` format
// The model hash (in the card) is the SHA-256 of the SHA256SUMS lines of model.json, weights.bin and
// preprocessing.json, in that order: it names exactly the weights and the preprocessing that score a row.
import { createHash } from 'node:crypto';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';
export const PREPROCESSING_JSON = 'preprocessing.json';
export const MODEL_CARD_JSON = 'model-card.json';
export const SHA256SUMS = 'SHA256SUMS';

export const PREPROCESSING_FORMAT = 'dpfed-preprocessing/1';
export const MODEL_CARD_FORMAT = 'dpfed-model-card/1';

/** The files the model hash covers, in order. */
export const HASHED_MODEL_FILES = [MODEL_JSON, WEIGHTS_BIN, PREPROCESSING_JSON] as const;

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** One SHA256SUMS line (two spaces: text mode, as sha256sum writes it). */
export function sumLine(hash: string, file: string): string {
  return `${hash}  ${file}\n`;
}

/** The model hash from the files' own hashes (file name → hex). */
export function modelHashOf(hashes: Record<string, string>): string {
  return sha256Hex(HASHED_MODEL_FILES.map((f) => sumLine(hashes[f], f)).join(''));
}

/** Parses SHA256SUMS text into file → hash; throws naming the bad line. */
export function parseSums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new Error(`${SHA256SUMS}: line ${i + 1}: expected "<64 hex>  <file>"`);
    out.set(m[2], m[1]);
  });
  return out;
}

export interface PreprocessingFile {
  format: typeof PREPROCESSING_FORMAT;
  /** The public data schema (null when the export was given none: inputs are then the model's raw inputs). */
  schema: unknown;
  schemaHash: string | null;
  featureNames: string[];
  labelColumn: string | null;
  /** An id column to carry into predictions, when named at export. */
  idColumn: string | null;
}

export interface ModelCard {
  format: typeof MODEL_CARD_FORMAT;
  runId: string;
  round: number;
  modelVersion: number;
  /** How the round was chosen: a number asked for, 'last', or 'best' (highest recorded global AUC). */
  roundSelection: string;
  roundSelectionNote?: string;
  createdAt: string;
  modelSpec: unknown;
  strategy: string;
  strategyOptions: unknown;
  aggregation: string;
  privacy: unknown;
  /**
   * ε per institution from the coordinator's ledger: `epsilon` composes this run's events up to this round
   * (what this model cost); `epsilonAllRuns` composes every event on the ledger when the model was exported.
   */
  epsilon: { institution: string; epsilon: number; delta: number; epsilonAllRuns: number; budgetEpsilon: number; accountant: string }[];
  /** The round's global metrics as recorded (private evaluation signal where privacy is on). */
  metrics: Record<string, number | null>;
  metricsNote: string;
  /**
   * Cross-site evaluation of this model (present when the run ran one and this is the model it scored,
   * the run's final model): each institution's own AUC on its own validation rows, from the histograms it
   * released alone (noisy under privacy record, with the AUC's standard error from that noise; exact with
   * privacy off), or why it gave none.
   */
  crossSite?: {
    private: boolean;
    institutions: { institution: string; status: string; auc: number | null; aucStderr: number | null; examples: number | null; noiseMultiplier: number | null; detail: string }[];
    note: string;
  };
  modelHash: string;
  files: Record<string, string>;
}
