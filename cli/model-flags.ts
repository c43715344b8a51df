// What `dpfed predict` and `dpfed evaluate` share: the model folder's flags and loading it with usage
// errors that name the flag.
import { existsSync, statSync } from 'node:fs';
import { loadModel, ModelFileError, type LoadedModel } from '@dpfed/client/model-file';
import { BACKEND_NAMES, selectBackend, type BackendName } from '@dpfed/client/tf-backend';
import { UsageError, type FlagSpec, type FlagValues } from '@dpfed/proto/command-flags';
import { schemaFromFlag } from '@dpfed/proto/schema-flag';

export const MODEL_FLAGS: FlagSpec[] = [
  { name: 'model', type: 'string', required: true, help: 'model folder written by dpfed model export (its hashes are checked on load)' },
  { name: 'data', type: 'string', required: true, help: "CSV with a header row naming every feature column of the model's schema (read as a stream)" },
  { name: 'schema', type: 'string', help: "data schema (JSON) for a model exported without one; else it must equal the model's" },
  { name: 'backend', type: 'string', default: 'cpu', choices: BACKEND_NAMES, help: 'TensorFlow.js backend that runs the network' },
];

export async function loadModelFromFlags(f: FlagValues): Promise<LoadedModel> {
  const dir = String(f.model);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--model: no such folder: ${dir}`);
  if (!existsSync(String(f.data))) throw new UsageError(`--data: no such file: ${String(f.data)}`);
  const schema = schemaFromFlag(f.schema);
  const { tf } = await selectBackend(f.backend as BackendName);
  try {
    return await loadModel(dir, { tf, schema });
  } catch (error) {
    if (error instanceof ModelFileError) {
      const aboutSchema = /exported without a data schema|given schema differs/.test(error.message);
      throw new UsageError(`--${aboutSchema ? 'schema' : 'model'}: ${error.message}`);
    }
    throw error;
  }
}
