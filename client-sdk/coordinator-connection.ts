// The institution's side of the wire: promise-returning calls to the coordinator, model download into
// one preallocated copy, and result upload in chunks with back-pressure. Only outbound connections.
import * as grpc from '@grpc/grpc-js';
import { chunkTensors, TensorAssembler, type NamedTensor, type TensorData } from '../proto/tensor-stream.ts';
import {
  CHANNEL_OPTIONS,
  DEFAULT_CHUNK_BYTES,
  federationClientConstructor,
  type AckMsg,
  type DTypeName,
  type DeclineRequestMsg,
  type Envelope,
  type RegisterRequest,
  type RegisterResponse,
  type ResultHeaderMsg,
  type SecAggMessageMsg,
  type TaskMsg,
  type TensorChunkMsg,
} from '../proto/wire.ts';

export class CoordinatorConnection {
  private readonly client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;

  constructor(readonly address: string, credentials = grpc.credentials.createInsecure()) {
    const Client = federationClientConstructor();
    this.client = new Client(address, credentials, CHANNEL_OPTIONS) as never;
  }

  close(): void {
    this.client.close();
  }

  private unary<Req, Res>(method: string, request: Req, deadlineMs = 30_000): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client[method](request, { deadline: Date.now() + deadlineMs }, (error: grpc.ServiceError | null, response: Res) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  register(request: RegisterRequest): Promise<RegisterResponse> {
    return this.unary('Register', request);
  }

  heartbeat(envelope: Envelope): Promise<{ phase: string; round: number }> {
    return this.unary('Heartbeat', { envelope });
  }

  pullTask(envelope: Envelope, waitMs: number): Promise<TaskMsg> {
    return this.unary('PullTask', { envelope, waitMs }, waitMs + 15_000);
  }

  decline(request: DeclineRequestMsg): Promise<AckMsg> {
    return this.unary('Decline', request);
  }

  pushSecAgg(message: SecAggMessageMsg): Promise<AckMsg> {
    return this.unary('PushSecAgg', message);
  }

  /** Downloads the model of `envelope` as named tensors (one copy, filled chunk by chunk). */
  downloadModel(envelope: Envelope, chunkBytes = DEFAULT_CHUNK_BYTES, artifact = '', place?: (index: number, dtype: DTypeName, byteLength: number) => TensorData | undefined): Promise<NamedTensor[]> {
    return new Promise((resolve, reject) => {
      const assembler = new TensorAssembler(undefined, Number.MAX_SAFE_INTEGER, place);
      const call = this.client.DownloadModel({ envelope, chunkBytes, artifact }) as grpc.ClientReadableStream<TensorChunkMsg>;
      let failed = false;
      call.on('data', (chunk: TensorChunkMsg) => {
        if (failed) return;
        try {
          assembler.push(chunk);
        } catch (error) {
          failed = true;
          call.cancel();
          reject(error);
        }
      });
      call.on('error', (error) => {
        if (!failed) reject(error);
        failed = true;
      });
      call.on('end', () => {
        if (failed) return;
        try {
          resolve(assembler.finish());
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  /** Uploads a result: the header, then every tensor in chunks, waiting for the stream to drain. */
  pushResult(header: ResultHeaderMsg, tensors: readonly NamedTensor[], chunkBytes = DEFAULT_CHUNK_BYTES): Promise<AckMsg> {
    return new Promise((resolve, reject) => {
      const call = this.client.PushResult((error: grpc.ServiceError | null, ack: AckMsg) => (error ? reject(error) : resolve(ack))) as grpc.ClientWritableStream<unknown>;
      call.on('error', () => undefined);
      const write = async () => {
        if (!call.write({ header })) await new Promise((r) => call.once('drain', r));
        for (const tensor of chunkTensors(tensors, chunkBytes)) {
          if (!call.write({ tensor })) await new Promise((r) => call.once('drain', r));
        }
        call.end();
      };
      write().catch((error) => {
        call.cancel();
        reject(error);
      });
    });
  }
}
