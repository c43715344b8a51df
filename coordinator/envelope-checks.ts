// The checks of the envelope every request carries: the run it is for, and for a round's messages the
// round and the model version they answer. Each refusal is FAILED_PRECONDITION naming the envelope field.
import type { Envelope } from '@dpfed/proto/wire';
import { failedPrecondition } from './rpc-error.ts';

/** Throws unless the envelope is of run `runId`. */
export function checkRun(envelope: Envelope, runId: string): void {
  if (envelope.runId !== runId) throw failedPrecondition(`envelope.run_id: "${envelope.runId}" is not the current run "${runId}"`);
}

/** Throws unless the envelope is of run `runId`, the current `round`, and answers the model of `modelVersion`. */
export function checkRound(envelope: Envelope, current: { runId: string; round: number }, modelVersion: number): void {
  checkRun(envelope, current.runId);
  if (envelope.round !== current.round) throw failedPrecondition(`envelope.round: round ${envelope.round} is closed (current round ${current.round})`);
  if (envelope.modelVersion !== modelVersion) {
    throw failedPrecondition(`envelope.model_version: expected ${modelVersion} for this phase, got ${envelope.modelVersion}`);
  }
}
