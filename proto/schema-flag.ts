// A flag naming a public data schema file (JSON, proto/data-schema.ts): read and validated once here, so
// every command reports a bad file the same way, as a UsageError naming the flag, the column and the field.
import { readSchemaFile, type DataSchema } from './data-schema.ts';
import { UsageError } from './command-flags.ts';

/** The schema a flag names; undefined when the flag was not given. */
export function schemaFromFlag(value: unknown, flag = 'schema'): DataSchema | undefined {
  if (value === undefined) return undefined;
  try {
    return readSchemaFile(String(value));
  } catch (error) {
    throw new UsageError(`--${flag}: ${(error as Error).message}`);
  }
}
