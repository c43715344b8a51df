// Before it registers, an institution compares its own data schema with the run's public one
// (ChallengeResponse.schema_json) and refuses locally on a mismatch: its rows would be preprocessed unlike
// everyone else's, and the coordinator would refuse it anyway. Also the learner's schema hash as the bytes
// RegisterRequest.schema_hash carries.
import { type DataSchema, describeSchemaMismatch, parseSchema, schemaHash as hashOfSchema } from '@dpfed/proto/data-schema';
import type { Learner } from './learner.ts';

/** This institution's data schema is not the run's: it refused to register (never retried). */
export class SchemaMismatchError extends Error {}

/** Throws SchemaMismatchError (naming the differing columns) when `learner`'s schema is not the run's; nothing when the run has none. */
export function checkRunSchema(schemaJson: string | undefined, learner: Pick<Learner, 'schema' | 'schemaHash'>): void {
  if (!schemaJson) return;
  let runSchema: DataSchema;
  try {
    runSchema = parseSchema(JSON.parse(schemaJson), "the run's data schema (ChallengeResponse.schema_json)");
  } catch (error) {
    throw new SchemaMismatchError(`register: ${(error as Error).message}`);
  }
  const own = learner.schema ?? null;
  if (own) {
    const mismatch = describeSchemaMismatch(runSchema, own);
    if (mismatch) throw new SchemaMismatchError(`register: this institution's data schema differs from the run's: ${mismatch} (compare with dpfed schema hash; preprocess with the run's schema)`);
    return;
  }
  const runHash = hashOfSchema(runSchema);
  if (!learner.schemaHash)
    throw new SchemaMismatchError(
      `register: the run uses a public data schema (schema hash ${runHash}) and this institution declares none: preprocess its data with that schema (dpfed client --schema FILE)`,
    );
  if (learner.schemaHash.toLowerCase() !== runHash)
    throw new SchemaMismatchError(`register: this institution's schema hash ${learner.schemaHash} differs from the run's ${runHash} (compare with dpfed schema hash)`);
}

/** A learner's schema hash (hex SHA-256, proto/data-schema.ts schemaHash) as the bytes RegisterRequest.schema_hash carries; empty when none. */
export function schemaHashBytes(hash: string | null | undefined): Uint8Array {
  if (!hash) return new Uint8Array(0);
  if (!/^[0-9a-fA-F]{64}$/.test(hash)) throw new Error(`learner.schemaHash: expected a SHA-256 as 64 hex characters, got "${hash}"`);
  return new Uint8Array(Buffer.from(hash, 'hex'));
}
