// The gRPC face of the coordinator: decodes calls, authenticates the envelope, hands the work to the
// round machine, and turns errors into gRPC statuses whose details name the field at fault.
import * as grpc from '@grpc/grpc-js';
import type { IdentityKey } from '../privacy/identity.ts';
import { chunkTensors, TensorAssembler, TensorStreamError } from '../proto/tensor-stream.ts';
import {
  DEFAULT_CHUNK_BYTES,
  MAX_MESSAGE_BYTES,
  type AckMsg,
  type DeclineRequestMsg,
  type HeartbeatRequestMsg,
  type ModelRequestMsg,
  type PullTaskRequestMsg,
  type RegisterRequest,
  type RegisterResponse,
  type ResultChunkMsg,
  type SecAggMessageMsg,
  type TaskMsg,
  type TensorChunkMsg,
} from '../proto/wire.ts';
import type { EncodedModelCache } from './encoded-model-cache.ts';
import type { InstitutionRegistry } from './institution-registry.ts';
import type { ResultSink, RoundMachine } from './round-machine.ts';
import { RpcError, invalidArgument } from './rpc-error.ts';

function toServiceError(error: unknown): Partial<grpc.ServiceError> {
  if (error instanceof RpcError) return { code: error.code, details: error.message, message: error.message };
  if (error instanceof TensorStreamError) return { code: grpc.status.INVALID_ARGUMENT, details: `tensor.${error.field}: ${error.message}`, message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { code: grpc.status.INTERNAL, details: message, message };
}

export interface ServiceDeps {
  registry: InstitutionRegistry;
  machine: () => RoundMachine;
  coordinatorIdentity: IdentityKey;
  log?: (line: string) => void;
  /** Serialised models shared by every download of the same model (optional). */
  encodedModels?: EncodedModelCache;
}

export function federationHandlers(deps: ServiceDeps): grpc.UntypedServiceImplementation {
  const { registry } = deps;
  const unary =
    <Req, Res>(fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      Promise.resolve()
        .then(() => fn(call.request, call))
        .then(
          (response) => callback(null, response),
          (error) => {
            if (!(error instanceof RpcError)) deps.log?.(`internal error: ${(error as Error)?.stack ?? error}`);
            callback(toServiceError(error) as grpc.ServiceError);
          },
        );
    };

  return {
    Register: unary<RegisterRequest, RegisterResponse>((request) => {
      const institution = registry.register(request);
      deps.log?.(`registered ${institution.id}`);
      return {
        session: institution.session,
        runId: deps.machine().runId,
        coordinatorPublicKey: deps.coordinatorIdentity.publicKey,
        maxChunkBytes: DEFAULT_CHUNK_BYTES,
        maxMessageBytes: MAX_MESSAGE_BYTES,
      };
    }),

    Heartbeat: unary<HeartbeatRequestMsg, { phase: string; round: number }>((request) => {
      registry.authenticate(request.envelope);
      const { phase, round } = deps.machine().status;
      return { phase, round };
    }),

    PullTask: unary<PullTaskRequestMsg, TaskMsg>((request, call) => {
      const institution = registry.authenticate(request.envelope);
      return deps.machine().pullTask(institution, request.waitMs, (cb) => call.on('cancelled', cb));
    }),

    DownloadModel: async (call: grpc.ServerWritableStream<ModelRequestMsg, TensorChunkMsg | Buffer>) => {
      try {
        const institution = registry.authenticate(call.request.envelope);
        const chunkBytes = call.request.chunkBytes > 0 ? Math.min(call.request.chunkBytes, DEFAULT_CHUNK_BYTES) : DEFAULT_CHUNK_BYTES;
        const artifact = call.request.artifact ?? '';
        const machine = deps.machine();
        const tensors = () => machine.modelTensors(call.request.envelope, institution, artifact);
        const encoded = artifact === '' && deps.encodedModels ? deps.encodedModels.chunks(machine.modelIdOf(call.request.envelope), chunkBytes, tensors) : null;
        for (const chunk of encoded ?? chunkTensors(tensors(), chunkBytes, call.request.envelope)) {
          if (call.cancelled) return;
          if (!call.write(chunk)) await new Promise((resolve) => call.once('drain', resolve));
        }
        call.end();
      } catch (error) {
        // grpc-js sends a server stream's status when an error is emitted on it (destroy() would leave the client waiting)
        call.emit('error', toServiceError(error));
      }
    },

    PushResult: (call: grpc.ServerReadableStream<ResultChunkMsg, AckMsg>, callback: grpc.sendUnaryData<AckMsg>) => {
      let sink: ResultSink | null = null;
      let assembler: TensorAssembler | null = null;
      let finished = false;
      const fail = (error: unknown) => {
        if (finished) return;
        finished = true;
        const e = toServiceError(error);
        sink?.fail(e.details ?? 'invalid result');
        callback(e as grpc.ServiceError);
      };
      call.on('data', (chunk: ResultChunkMsg) => {
        if (finished) return;
        try {
          if (!sink) {
            if (!chunk.header) throw invalidArgument('header: the first message of a result must be its header');
            const institution = registry.authenticate(chunk.header.envelope);
            sink = deps.machine().openResult(institution, chunk.header);
            assembler = new TensorAssembler(sink.expectTensor, 2 ** 40, sink.place);
            return;
          }
          if (!chunk.tensor) throw invalidArgument('tensor: expected tensor chunks after the header');
          assembler!.push(chunk.tensor);
        } catch (error) {
          fail(error);
        }
      });
      call.on('end', () => {
        if (finished) return;
        try {
          if (!sink || !assembler) throw invalidArgument('header: empty result stream');
          const tensors = assembler.finish(sink.tensorCount);
          sink.finish(tensors);
          finished = true;
          callback(null, { accepted: true, message: 'result accepted' });
        } catch (error) {
          fail(error);
        }
      });
      call.on('error', () => {
        finished = true; // the client went away mid-stream; nothing was recorded
      });
    },

    PushSecAgg: unary<SecAggMessageMsg, AckMsg>((request) => {
      const institution = registry.authenticate(request.envelope);
      deps.machine().receiveSecAgg(institution, request);
      return { accepted: true, message: 'ok' };
    }),

    Decline: unary<DeclineRequestMsg, AckMsg>((request) => {
      const institution = registry.authenticate(request.envelope);
      deps.machine().decline(institution, request);
      return { accepted: true, message: 'decline recorded' };
    }),
  };
}
