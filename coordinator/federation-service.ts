// The gRPC face of the coordinator, one call per request: decodes calls, hands them to the federation
// operations, and turns errors into gRPC statuses whose details name the field at fault. The SDK's
// Session stream (session-service.ts) carries the same requests to the same operations.
import * as grpc from '@grpc/grpc-js';
import type { AckMsg, ModelRequestMsg, ResultChunkMsg, TensorChunkMsg } from '@dpfed/proto/wire';
import { UndecodableMessage } from '@dpfed/proto/request-decoding';
import { federationOperations, type FederationOperations, type ServiceDeps } from './federation-operations.ts';
import { requestStreamReset, waitForReset } from './request-stream-reset.ts';
import { grpcServiceError, invalidArgument, type RefusalObserver } from './rpc-error.ts';
import { sessionHandler } from './session-service.ts';
import type { ZeroCopyFraming } from '@dpfed/proto/zero-copy-framing';

export type { ServiceDeps } from './federation-operations.ts';

/** Throws INVALID_ARGUMENT naming `field` when `message` did not decode (proto/request-decoding.ts). */
function decoded<T>(message: T | UndecodableMessage, field: string): T {
  if (message instanceof UndecodableMessage) throw invalidArgument(message.describe(field));
  return message;
}

function toServiceError(error: unknown, log?: (line: string) => void, refused?: RefusalObserver): grpc.ServiceError {
  return grpcServiceError(error, refused, log);
}

/** `refused` (optional) is told of every request that ends with an error status, for metrics. */
export function federationHandlers(deps: ServiceDeps, ops: FederationOperations = federationOperations(deps), refused?: RefusalObserver, framing?: ZeroCopyFraming): grpc.UntypedServiceImplementation {
  const unary =
    <Req, Res>(fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      Promise.resolve()
        .then(() => fn(decoded(call.request, 'request'), call))
        .then(
          (response) => callback(null, response),
          (error) => callback(toServiceError(error, deps.log, refused)),
        );
    };

  return {
    Challenge: unary(ops.challenge),
    Register: unary(ops.register),
    Heartbeat: unary(ops.heartbeat),
    PullTask: unary((request: Parameters<FederationOperations['pullTask']>[0], call) => ops.pullTask(request, (cb) => call.on('cancelled', cb))),
    PushSecAgg: unary(ops.pushSecAgg),
    Decline: unary(ops.decline),

    DownloadModel: async (call: grpc.ServerWritableStream<ModelRequestMsg, TensorChunkMsg | Buffer>) => {
      try {
        const { chunks } = ops.downloadModel(decoded(call.request, 'request')).chunks();
        for (const chunk of chunks) {
          if (call.cancelled) return;
          if (!call.write(chunk)) await new Promise((resolve) => call.once('drain', resolve));
        }
        call.end();
      } catch (error) {
        // grpc-js sends a server stream's status when an error is emitted on it (destroy() would leave the client waiting)
        call.emit('error', toServiceError(error, deps.log, refused));
      }
    },

    PushResult: (call: grpc.ServerReadableStream<ResultChunkMsg, AckMsg>, callback: grpc.sendUnaryData<AckMsg>) => {
      const receiver = ops.openResult();
      let finished = false;
      const fail = (error: unknown) => {
        if (finished) return;
        finished = true;
        const e = toServiceError(error, deps.log, refused);
        receiver.reject(e.details);
        callback(e);
      };
      call.on('data', (chunk: ResultChunkMsg) => {
        if (finished) return;
        try {
          receiver.push(decoded(chunk, 'result'));
        } catch (error) {
          fail(error);
        }
      });
      // A client that cancels mid-upload also ends the request stream: grpc-js passes that on as an
      // ordinary end, and the reset that says "cancelled" arrives just after (request-stream-reset.ts). A
      // cancelled upload is dropped (nothing recorded, the institution may push again in this phase); only
      // a stream the client really closed is taken as its whole result, and refused when it is incomplete.
      const drop = () => {
        finished = true;
      };
      call.on('cancelled', drop);
      call.on('end', () => {
        if (finished) return;
        if (requestStreamReset(call)) return drop();
        let ack: AckMsg;
        try {
          ack = receiver.end();
        } catch (error) {
          void waitForReset(call).then((reset) => (reset || call.cancelled ? drop() : fail(error)));
          return;
        }
        finished = true;
        callback(null, ack);
      });
      call.on('error', () => {
        finished = true; // the client went away mid-stream; nothing was recorded
      });
    },

    Session: sessionHandler(ops, deps.log, deps.openSessions, refused, framing),
  };
}
