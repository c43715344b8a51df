// A failed gRPC call as a FederationError: its status code, its details and the refusal reason the
// coordinator put in the trailing metadata (proto/federation-error.ts). A failure of the connection itself
// (UNAVAILABLE, DEADLINE_EXCEEDED, …) carries no reason and keeps its code.
import type * as grpc from '@grpc/grpc-js';
import { FederationError, REFUSAL_REASON_METADATA, defaultReasonFor, refusalReasonOf } from '@dpfed/proto/federation-error';

export function federationErrorOf(error: unknown): Error {
  if (error instanceof FederationError) return error;
  const e = error as Partial<grpc.ServiceError> | null;
  if (typeof e?.code !== 'number') return error as Error;
  const given = e.metadata?.get(REFUSAL_REASON_METADATA)?.[0];
  const reason = given === undefined ? defaultReasonFor(e.code) : refusalReasonOf(String(given));
  return new FederationError(e.code, e.details ?? e.message ?? '', reason);
}
