// An error that maps to a gRPC status; its message names the offending field.
import { status } from '@grpc/grpc-js';
import { TensorStreamError } from '../proto/tensor-stream.ts';
import { isStorageFault } from './storage-fault.ts';

export class RpcError extends Error {
  constructor(readonly code: status, message: string) {
    super(message);
  }
}

export const invalidArgument = (message: string) => new RpcError(status.INVALID_ARGUMENT, message);
export const failedPrecondition = (message: string) => new RpcError(status.FAILED_PRECONDITION, message);
export const unauthenticated = (message: string) => new RpcError(status.UNAUTHENTICATED, message);
export const permissionDenied = (message: string) => new RpcError(status.PERMISSION_DENIED, message);

/** Told of every request refused with a gRPC status (metrics): the code and the message sent. */
export type RefusalObserver = (code: status, message: string) => void;

/**
 * The status a failed request ends with; anything that is not one of ours is INTERNAL, except a storage
 * fault of the coordinator's database (locked, read-only, disk full), which is UNAVAILABLE: the
 * institution retries the call with backoff instead of giving up, and the coordinator logs it.
 */
export function callStatusOf(error: unknown): { code: status; message: string; internal: boolean } {
  if (error instanceof RpcError) return { code: error.code, message: error.message, internal: false };
  if (isStorageFault(error)) {
    return { code: status.UNAVAILABLE, message: `the coordinator cannot write its database for now (${(error as { code: string }).code}); retry later`, internal: true };
  }
  if (error instanceof TensorStreamError) return { code: status.INVALID_ARGUMENT, message: `tensor.${error.field}: ${error.message}`, internal: false };
  return { code: status.INTERNAL, message: error instanceof Error ? error.message : String(error), internal: true };
}
