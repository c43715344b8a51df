// An error that maps to a gRPC status; its message names the offending field.
import { status } from '@grpc/grpc-js';

export class RpcError extends Error {
  constructor(readonly code: status, message: string) {
    super(message);
  }
}

export const invalidArgument = (message: string) => new RpcError(status.INVALID_ARGUMENT, message);
export const failedPrecondition = (message: string) => new RpcError(status.FAILED_PRECONDITION, message);
export const unauthenticated = (message: string) => new RpcError(status.UNAUTHENTICATED, message);
export const permissionDenied = (message: string) => new RpcError(status.PERMISSION_DENIED, message);
