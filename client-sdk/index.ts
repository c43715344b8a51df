// @dpfed/client: the institution node's SDK, as an institution that embeds it uses it (README, "An
// institution"; examples/embed-institution.ts). Every module is also importable by its own path
// ('@dpfed/client/<module>').
export { FederationClient, SchemaMismatchError, type ClientRunResult, type FederationClientOptions } from './federation-client.ts';
export type { EvalOutcome, Learner, TaskContext, TrainOutcome } from './learner.ts';
export { SchemaRequiredError, TfjsLearner } from './tfjs-learner.ts';
export { InstitutionPrivacy, type InstitutionPrivacyOptions } from './institution-privacy.ts';
export { CsvError, loadInstitutionCsv, type Dataset, type InstitutionData, type LoadOptions } from './csv-dataset.ts';
export { loadOrCreateSplitKey, RowSplitter } from './data-split.ts';
export { BACKEND_NAMES, selectBackend, type BackendName, type SelectedBackend } from './tf-backend.ts';
export { evaluate, loadModel, ModelFileError, predict, type LoadedModel } from './model-file.ts';
// what an embedding institution needs from the packages the client depends on
export { defaultKeyDir, institutionKeyPath, loadOrCreateIdentity } from '@dpfed/privacy/identity';
export { readSchemaFile, type DataSchema } from '@dpfed/proto/data-schema';
