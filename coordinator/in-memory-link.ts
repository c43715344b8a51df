// The in-memory transport: an institution's CoordinatorLink (proto/coordinator-link.ts) that hands each
// request to the coordinator's federation operations in the same process, with no socket. Every message
// crosses as it would cross the wire: it is serialised with the contract's protobuf encoder and decoded
// again on the other side, so both sides see exactly what gRPC would hand them (defaults filled in, bytes
// as Buffers, no shared memory between the SDK and the coordinator). A refusal reaches the SDK as a
// FederationError with the same code, message and typed reason a gRPC call would carry. Liveness follows the
// Session stream's rule: the link speaks for an institution once one of its requests authenticated, and
// closing the link tells the coordinator it has gone.
import { status, type MethodDefinition } from '@grpc/grpc-js';
import type { CoordinatorLink } from '@dpfed/proto/coordinator-link';
import { FederationError } from '@dpfed/proto/federation-error';
import { chunkTensors, TensorAssembler, type NamedTensor } from '@dpfed/proto/tensor-stream';
import { DEFAULT_CHUNK_BYTES, federationService, type AckMsg, type ResultChunkMsg, type TensorChunkMsg } from '@dpfed/proto/wire';
import type { FederationOperations } from './federation-operations.ts';
import { callStatusOf, type RefusalObserver } from './rpc-error.ts';

type Method = MethodDefinition<unknown, unknown>;

/** A message as the other side would decode it from the wire. */
function across<T>(method: Method, side: 'request' | 'response', message: T): T {
  return side === 'request' ? (method.requestDeserialize(method.requestSerialize(message)) as T) : (method.responseDeserialize(method.responseSerialize(message)) as T);
}

export interface InMemoryLinkOptions {
  /** Told of every refused request (metrics), as the gRPC edge tells it. */
  refused?: RefusalObserver;
  /** Where internal errors of the coordinator are logged. */
  log?: (line: string) => void;
}

export function inMemoryLink(ops: FederationOperations, options: InMemoryLinkOptions = {}): CoordinatorLink {
  const service = federationService();
  const refusal = (error: unknown): FederationError => {
    if (error instanceof FederationError) return error;
    const { code, message, reason, internal } = callStatusOf(error);
    options.refused?.(code, message);
    if (internal) options.log?.(`internal error: ${(error as Error)?.stack ?? error}`);
    return new FederationError(code, message, reason);
  };
  /** Runs one request on the coordinator: the request and its answer cross as wire messages. */
  const call = async <Req, Res>(name: string, request: Req, handle: (request: Req) => Res | Promise<Res>): Promise<Res> => {
    const method = service[name] as Method;
    let response: Res;
    try {
      response = await handle(across(method, 'request', request));
    } catch (error) {
      throw refusal(error);
    }
    return across(method, 'response', response);
  };

  let institutionId: string | null = null;
  let closed = false;
  const cancels = new Set<() => void>();
  const identified = (id: string) => {
    if (institutionId !== null || closed) return;
    institutionId = id;
    ops.sessionOpened(id);
  };

  return {
    address: 'in-memory',

    challenge: (request) => call('Challenge', request, (r) => ops.challenge(r)),
    register: (request) => call('Register', request, (r) => ops.register(r)),

    heartbeat: (envelope) =>
      call('Heartbeat', { envelope }, (r) => {
        const status = ops.heartbeat(r);
        identified(r.envelope.institutionId);
        return status;
      }),

    pullTask: (envelope, waitMs) =>
      call('PullTask', { envelope, waitMs }, (r) => {
        let cancelled: (() => void) | null = null;
        const task = ops.pullTask(r, (cb) => {
          cancelled = cb;
          cancels.add(cb);
        });
        identified(r.envelope.institutionId);
        return task.finally(() => cancelled && cancels.delete(cancelled));
      }),

    decline: (request) => call('Decline', request, (r) => ops.decline(r)),
    pushSecAgg: (message) => call('PushSecAgg', message, (r) => ops.pushSecAgg(r)),

    async downloadModel(envelope, chunkBytes = DEFAULT_CHUNK_BYTES, artifact = '', place) {
      const method = service.DownloadModel as Method;
      const assembler = new TensorAssembler(undefined, Number.MAX_SAFE_INTEGER, place);
      try {
        const { encoded, chunks } = ops.downloadModel(across(method, 'request', { envelope, chunkBytes, artifact })).chunks();
        for (const chunk of chunks) {
          if (closed) throw new FederationError(status.CANCELLED, 'the link was closed during the download');
          // an encoded chunk is the TensorChunk's wire bytes already; any other crosses as one
          assembler.push(encoded ? (method.responseDeserialize(chunk as Buffer) as TensorChunkMsg) : across(method, 'response', chunk as TensorChunkMsg));
        }
        return assembler.finish();
      } catch (error) {
        throw refusal(error);
      }
    },

    async pushResult(header, tensors: readonly NamedTensor[], chunkBytes = DEFAULT_CHUNK_BYTES): Promise<AckMsg> {
      const method = service.PushResult as Method;
      const receiver = ops.openResult();
      try {
        receiver.push(across<ResultChunkMsg>(method, 'request', { header }));
        for (const tensor of chunkTensors(tensors, chunkBytes)) receiver.push(across<ResultChunkMsg>(method, 'request', { tensor }));
        return across(method, 'response', receiver.end());
      } catch (error) {
        const failure = refusal(error);
        receiver.reject(failure.details);
        throw failure;
      }
    },

    close() {
      if (closed) return;
      closed = true;
      for (const cancel of [...cancels]) cancel();
      cancels.clear();
      if (institutionId !== null) ops.sessionClosed(institutionId);
    },
  };
}
