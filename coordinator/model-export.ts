// Exports a committed global model from the coordinator's SQLite file as a folder anyone can score with
// (proto/model-file-format.ts): the network as a TensorFlow.js Layers model built and saved by tfjs itself,
// the public data schema as its preprocessing, a model card (run, round, strategy, privacy, ε per
// institution from the ledger, the round's recorded metrics) and SHA256SUMS.
//
// Only reads the database (the caller may open it read-only). The folder is written beside its final place
// and renamed into it at the end, so a failed export leaves nothing half-written under that name.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { composedEpsilon } from '@dpfed/privacy/budget';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { compileSchema, labelColumn, schemaHash, type DataSchema } from '@dpfed/proto/data-schema';
import {
  MODEL_CARD_FORMAT,
  MODEL_CARD_JSON,
  MODEL_JSON,
  modelHashOf,
  PREPROCESSING_FORMAT,
  PREPROCESSING_JSON,
  sha256Hex,
  SHA256SUMS,
  sumLine,
  WEIGHTS_BIN,
  type ModelCard,
  type PreprocessingFile,
} from '@dpfed/proto/model-file-format';
import { layerWidths, parameterCount, parseModelSpec, unflattenParameters, type ModelSpec } from '@dpfed/proto/model-spec';
import type { RunConfig } from './run-config.ts';
import { crossSiteResults } from './cross-site-results.ts';

type Tf = typeof import('./tfjs.ts');

export class ModelExportError extends Error {}

export type RoundChoice = number | 'best' | 'last';

export interface ExportOptions {
  /** The coordinator's database (a CoordinatorStore's db, or one opened read-only). */
  db: Database.Database;
  /** Default: the most recently created run. */
  runId?: string;
  /** Default: the run's `keep` (RunConfig.keep: 'best' or 'last'), else 'last'. */
  round?: RoundChoice;
  outDir: string;
  schema?: DataSchema;
  /** A column of the CSV to copy into predictions (it must not be a feature column). */
  idColumn?: string;
  /** Replace outDir if it exists. */
  force?: boolean;
  /** A tfjs module; default: TensorFlow.js (tfjs.ts) on the backend the process runs. */
  tf?: Tf;
}

export interface ExportResult {
  outDir: string;
  card: ModelCard;
}

const REQUIRED_TABLES = ['runs', 'rounds', 'models', 'model_parts', 'metrics'];

function checkDpfedDb(db: Database.Database): void {
  const have = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name));
  const missing = REQUIRED_TABLES.filter((t) => !have.has(t));
  if (missing.length) throw new ModelExportError(`not a dpfed coordinator database (missing tables: ${missing.join(', ')})`);
}

interface RunRecord {
  id: string;
  config: RunConfig;
  spec: ModelSpec;
}

function findRun(db: Database.Database, runId: string | undefined): RunRecord {
  const row = (
    runId === undefined
      ? db.prepare('SELECT id, config_json, model_spec_json FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1').get()
      : db.prepare('SELECT id, config_json, model_spec_json FROM runs WHERE id = ?').get(runId)
  ) as { id: string; config_json: string; model_spec_json: string } | undefined;
  if (!row) throw new ModelExportError(runId === undefined ? 'the database holds no run' : `run ${JSON.stringify(runId)} is not in the database`);
  return { id: row.id, config: JSON.parse(row.config_json) as RunConfig, spec: parseModelSpec(row.model_spec_json) };
}

/** The committed round a choice names ('best': the highest recorded global AUC, the later round on a tie); throws ModelExportError naming what is missing. */
export function chooseRound(db: Database.Database, runId: string, choice: RoundChoice): { round: number; modelVersion: number; aggregation: string } {
  const rounds = db.prepare('SELECT round, model_version AS modelVersion, aggregation FROM rounds WHERE run_id = ? ORDER BY round').all(runId) as {
    round: number;
    modelVersion: number;
    aggregation: string;
  }[];
  if (rounds.length === 0) throw new ModelExportError(`run ${runId} has no committed round, so no global model to export`);
  if (choice === 'last') return rounds[rounds.length - 1];
  if (choice === 'best') {
    const auc = db.prepare("SELECT round, value FROM metrics WHERE run_id = ? AND institution_id = '' AND name = 'auc' AND value IS NOT NULL").all(runId) as { round: number; value: number }[];
    if (auc.length === 0) throw new ModelExportError(`run ${runId} has no recorded global auc, so no best round`);
    // The highest AUC; on a tie the later round (it trained longer on the same signal).
    const best = auc.reduce((a, b) => (b.value > a.value || (b.value === a.value && b.round > a.round) ? b : a));
    return rounds.find((r) => r.round === best.round)!;
  }
  const found = rounds.find((r) => r.round === choice);
  if (!found) throw new ModelExportError(`run ${runId} has no committed round ${choice} (committed: ${rounds[0].round}..${rounds[rounds.length - 1].round})`);
  return found;
}

function readParameters(db: Database.Database, runId: string, version: number): Float32Array {
  const row = db.prepare('SELECT parameter_bytes FROM models WHERE run_id = ? AND version = ?').get(runId, version) as { parameter_bytes: number } | undefined;
  if (!row) throw new ModelExportError(`run ${runId} has no stored model version ${version}`);
  const bytes = new Uint8Array(row.parameter_bytes);
  let offset = 0;
  for (const part of db.prepare('SELECT bytes FROM model_parts WHERE run_id = ? AND version = ? ORDER BY part').iterate(runId, version) as Iterable<{ bytes: Buffer }>) {
    if (offset + part.bytes.length > bytes.length) throw new ModelExportError(`model ${runId} v${version}: stored parts exceed ${row.parameter_bytes} bytes`);
    bytes.set(part.bytes, offset);
    offset += part.bytes.length;
  }
  if (offset !== bytes.length) throw new ModelExportError(`model ${runId} v${version}: stored parts hold ${offset} of ${row.parameter_bytes} bytes`);
  return new Float32Array(bytes.buffer);
}

function roundMetrics(db: Database.Database, runId: string, round: number): Record<string, number | null> {
  const rows = db.prepare("SELECT name, value FROM metrics WHERE run_id = ? AND round = ? AND institution_id = '' ORDER BY name").all(runId, round) as { name: string; value: number | null }[];
  return Object.fromEntries(rows.map((r) => [r.name, r.value]));
}

/** ε per institution of this run's events up to `round`, composed at the institution's budget δ. */
function epsilonAt(db: Database.Database, run: RunRecord, round: number): ModelCard['epsilon'] {
  const hasLedger = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_meta'").get() !== undefined;
  if (!hasLedger) return [];
  const ledger = new PrivacyLedger(db);
  const kind = run.config.task.privacy.mode === 'client' ? (run.config.task.privacy.client?.accountant ?? 'rdp') : (run.config.task.privacy.record?.accountant ?? 'rdp');
  const accountant = makeAccountant(kind);
  const out: ModelCard['epsilon'] = [];
  for (const institution of ledger.institutions()) {
    const events = ledger.events({ institutionId: institution.institutionId, runId: run.id }).filter((r) => r.event.round <= round);
    if (events.length === 0) continue;
    const mechanisms = events.map((r) => ({ sampleRate: r.event.sampleRate, noiseMultiplier: r.event.noiseMultiplier, steps: r.event.steps }));
    const { epsilon } = composedEpsilon(mechanisms, institution.budget.delta, accountant);
    const all = ledger.spent(institution.institutionId, accountant);
    out.push({ institution: institution.institutionId, epsilon, delta: institution.budget.delta, epsilonAllRuns: all.epsilon, budgetEpsilon: institution.budget.epsilon, accountant: kind });
  }
  return out;
}

let defaultTf: Promise<Tf> | undefined;

/**
 * TensorFlow.js (tfjs.ts) on whatever backend the process already runs (the institutions' learners may share the
 * process, so the backend is never switched); without one, tfjs's default (cpu under Node).
 */
async function defaultTfModule(): Promise<Tf> {
  defaultTf ??= (async () => {
    const tf = await import('./tfjs.ts');
    await tf.ready();
    const cpu = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
    if (cpu && 'firstUse' in cpu) cpu.firstUse = false; // its "install tfjs-node" banner
    return tf;
  })();
  return defaultTf;
}

/**
 * The spec's network as a tfjs Layers model: dense_<i> layers with the spec's activations and a sigmoid
 * output (the model outputs the probability), holding `flat` (parameterShapes order).
 */
export function buildLayersModel(tf: Tf, spec: ModelSpec, flat: Float32Array): import('./tfjs.ts').Sequential {
  if (flat.length !== parameterCount(spec)) throw new ModelExportError(`stored model has ${flat.length} parameters, the run's model spec needs ${parameterCount(spec)}`);
  const widths = layerWidths(spec);
  const named = unflattenParameters(spec, flat);
  const model = tf.sequential({ name: 'dpfed_model' });
  for (let i = 0; i + 1 < widths.length; i++) {
    const activation = i < spec.hidden.length ? spec.hidden[i].activation : 'sigmoid';
    model.add(tf.layers.dense({ units: widths[i + 1], activation, name: `dense_${i}`, ...(i === 0 ? { inputShape: [widths[0]] } : {}) }));
  }
  model.layers.forEach((layer, i) => {
    const weights = [tf.tensor2d(named.get(`dense_${i}/kernel`)!, [widths[i], widths[i + 1]]), tf.tensor1d(named.get(`dense_${i}/bias`)!)];
    layer.setWeights(weights);
    tf.dispose(weights);
  });
  return model;
}

/** model.json (Layers format, one weights file) and the weights, as tfjs saves the model. */
async function layersArtifacts(tf: Tf, model: import('./tfjs.ts').Sequential): Promise<{ modelJson: string; weights: Uint8Array }> {
  let saved: { modelJson: string; weights: Uint8Array } | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: artifacts.weightSpecs ?? [] }],
      };
      saved = { modelJson: JSON.stringify(modelJson), weights: new Uint8Array(data) };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!saved) throw new ModelExportError('tfjs did not hand over the saved model');
  return saved;
}

function preprocessingOf(schema: DataSchema | undefined, spec: ModelSpec, idColumn: string | undefined): PreprocessingFile {
  if (!schema) {
    if (idColumn !== undefined) throw new ModelExportError('an id column needs a schema (--schema) to place it among the columns');
    return { format: PREPROCESSING_FORMAT, schema: null, schemaHash: null, featureNames: Array.from({ length: spec.inputDim }, (_, i) => `x${i}`), labelColumn: null, idColumn: null };
  }
  const { featureNames } = compileSchema(schema);
  if (featureNames.length !== spec.inputDim) throw new ModelExportError(`the schema has ${featureNames.length} feature columns, the run's model takes ${spec.inputDim} inputs`);
  if (idColumn !== undefined && featureNames.includes(idColumn)) throw new ModelExportError(`id column ${JSON.stringify(idColumn)} is a feature column of the schema`);
  return { format: PREPROCESSING_FORMAT, schema, schemaHash: schemaHash(schema), featureNames, labelColumn: labelColumn(schema).name, idColumn: idColumn ?? null };
}

/** Writes the model folder for one committed round; refuses clearly when there is nothing to export. */
export async function exportModel(o: ExportOptions): Promise<ExportResult> {
  checkDpfedDb(o.db);
  const run = findRun(o.db, o.runId);
  const choice = o.round ?? run.config.keep ?? 'last';
  const chosen = chooseRound(o.db, run.id, choice);
  const parameters = readParameters(o.db, run.id, chosen.modelVersion);
  // without an explicit schema, the one the run was created with (--schema of dpfed coordinator), if any
  const preprocessing = preprocessingOf(o.schema ?? run.config.schema, run.spec, o.idColumn);
  if (existsSync(o.outDir) && !o.force && readdirSync(o.outDir).length > 0) throw new ModelExportError(`${o.outDir} exists and is not empty`);

  const tf = o.tf ?? (await defaultTfModule());
  const model = buildLayersModel(tf, run.spec, parameters);
  let artifacts: Awaited<ReturnType<typeof layersArtifacts>>;
  try {
    artifacts = await layersArtifacts(tf, model);
  } finally {
    model.dispose();
  }
  const preprocessingText = JSON.stringify(preprocessing, null, 2) + '\n';
  const files: Record<string, string> = {
    [MODEL_JSON]: sha256Hex(artifacts.modelJson),
    [WEIGHTS_BIN]: sha256Hex(artifacts.weights),
    [PREPROCESSING_JSON]: sha256Hex(preprocessingText),
  };
  const privacy = run.config.task.privacy;
  const crossSite = crossSiteResults(o.db, run.id);
  const card: ModelCard = {
    format: MODEL_CARD_FORMAT,
    runId: run.id,
    round: chosen.round,
    modelVersion: chosen.modelVersion,
    roundSelection: String(choice),
    ...(choice === 'best'
      ? {
          roundSelectionNote:
            "best = the committed round with the highest recorded global AUC; that AUC is the federation's own evaluation signal (the evaluators' validation rows), so choosing by it uses that signal and the chosen AUC is optimistic",
        }
      : {}),
    createdAt: new Date().toISOString(),
    modelSpec: run.spec,
    strategy: run.config.strategy,
    strategyOptions: run.config.strategyOptions,
    aggregation: chosen.aggregation,
    privacy,
    epsilon: epsilonAt(o.db, run, chosen.round),
    metrics: roundMetrics(o.db, run.id, chosen.round),
    metricsNote:
      "global metrics as the coordinator recorded them for this round, from the evaluators' summed score histograms on their validation rows (auc is histogram-binned); evaluation adds no noise of its own, so no auc_stderr is recorded",
    ...(crossSite && crossSite.round === chosen.round
      ? {
          crossSite: {
            private: crossSite.private,
            institutions: crossSite.institutions.map((r) => ({
              institution: r.institutionId,
              status: r.status,
              auc: r.auc,
              aucStderr: r.aucStderr,
              examples: r.examples,
              noiseMultiplier: r.noiseMultiplier,
              detail: r.detail,
            })),
            note: crossSite.private
              ? 'each institution\'s own AUC of this model on its own validation rows, from the class histograms it released alone with its full evaluation noise (a "cross-site" event in its ledger, part of the epsilon above); auc_stderr is the error from that noise'
              : "each institution's own AUC of this model on its own validation rows, from its exact class histograms (privacy off: no privacy claim)",
          },
        }
      : {}),
    modelHash: modelHashOf(files),
    files,
  };
  const cardText = JSON.stringify(card, null, 2) + '\n';
  const sums = [MODEL_JSON, WEIGHTS_BIN, PREPROCESSING_JSON].map((f) => sumLine(files[f], f)).join('') + sumLine(sha256Hex(cardText), MODEL_CARD_JSON);

  const parent = dirname(o.outDir);
  mkdirSync(parent, { recursive: true });
  const staging = join(parent, `.${basename(o.outDir)}.tmp-${randomBytes(6).toString('hex')}`);
  mkdirSync(staging);
  try {
    writeFileSync(join(staging, MODEL_JSON), artifacts.modelJson);
    writeFileSync(join(staging, WEIGHTS_BIN), artifacts.weights);
    writeFileSync(join(staging, PREPROCESSING_JSON), preprocessingText);
    writeFileSync(join(staging, MODEL_CARD_JSON), cardText);
    writeFileSync(join(staging, SHA256SUMS), sums);
    if (existsSync(o.outDir)) rmSync(o.outDir, { recursive: true, force: true });
    renameSync(staging, o.outDir);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
  return { outDir: o.outDir, card };
}
