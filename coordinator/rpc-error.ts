// An error that maps to a gRPC status and a typed refusal reason (proto/federation-error.ts); its message
// names the offending field.
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { defaultReasonFor, REFUSAL_REASON_METADATA, type RefusalReason } from '@dpfed/proto/federation-error';
import { excerpt } from '@dpfed/proto/text-excerpt';
import { TensorStreamError } from '@dpfed/proto/tensor-stream';
import { isStorageFault } from './storage-fault.ts';

export class RpcError extends Error {
  readonly reason: RefusalReason;
  constructor(
    readonly code: status,
    message: string,
    reason?: RefusalReason,
  ) {
    super(message);
    this.reason = reason ?? defaultReasonFor(code);
  }
}

export const invalidArgument = (message: string, reason?: RefusalReason) => new RpcError(status.INVALID_ARGUMENT, message, reason);
export const failedPrecondition = (message: string, reason?: RefusalReason) => new RpcError(status.FAILED_PRECONDITION, message, reason);
export const unauthenticated = (message: string, reason?: RefusalReason) => new RpcError(status.UNAUTHENTICATED, message, reason);
export const permissionDenied = (message: string, reason: RefusalReason = 'IDENTITY_MISMATCH') => new RpcError(status.PERMISSION_DENIED, message, reason);

/** Told of every request refused with a gRPC status (metrics): the code and the message sent. */
export type RefusalObserver = (code: status, message: string) => void;

export interface CallStatus {
  code: status;
  message: string;
  reason: RefusalReason;
  /** Not the institution's doing: logged by the coordinator. */
  internal: boolean;
}

/**
 * The status a failed request ends with; anything that is not one of ours is INTERNAL, except a storage
 * fault of the coordinator's database (locked, read-only, disk full), which is UNAVAILABLE: the
 * institution retries the call with backoff instead of giving up, and the coordinator logs it.
 */
export function callStatusOf(error: unknown): CallStatus {
  const status = statusOf(error);
  return { ...status, message: excerpt(status.message, MAX_REFUSAL_MESSAGE) };
}

/**
 * The longest refusal message sent: it travels in the grpc-message trailer (an HTTP/2 header, which peers
 * refuse beyond a few kilobytes) or a CallStatus frame. A longer one, e.g. one that names a field whose
 * fuzzed value is megabytes long, is cut; its start still names the field at fault.
 */
export const MAX_REFUSAL_MESSAGE = 1024;

function statusOf(error: unknown): CallStatus {
  if (error instanceof RpcError) return { code: error.code, message: error.message, reason: error.reason, internal: false };
  if (isStorageFault(error)) {
    return { code: status.UNAVAILABLE, message: `the coordinator cannot write its database for now (${(error as { code: string }).code}); retry later`, reason: 'STORAGE_UNAVAILABLE', internal: true };
  }
  if (error instanceof TensorStreamError) return { code: status.INVALID_ARGUMENT, message: `tensor.${error.field}: ${error.message}`, reason: 'INVALID_FIELD', internal: false };
  return { code: status.INTERNAL, message: error instanceof Error ? error.message : String(error), reason: 'INTERNAL_ERROR', internal: true };
}

/**
 * A failed request as the gRPC status a separate call ends with: the code, the message, and the reason
 * in the trailing metadata (REFUSAL_REASON_METADATA). `refused` is told of it (metrics); an internal
 * failure is logged with its stack.
 */
export function grpcServiceError(error: unknown, refused?: RefusalObserver, log?: (line: string) => void): ServiceError {
  const { code, message, reason, internal } = callStatusOf(error);
  refused?.(code, message);
  if (internal) log?.(`internal error: ${(error as Error)?.stack ?? error}`);
  const metadata = new Metadata();
  metadata.set(REFUSAL_REASON_METADATA, reason);
  return Object.assign(new Error(message), { code, details: message, metadata }) as ServiceError;
}
