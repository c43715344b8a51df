// The institution's side of the wire: promise-returning requests to the coordinator, model download into
// one preallocated copy, and result upload in chunks with back-pressure. Only outbound connections, over
// TLS (the federation CA, and the institution's certificate for mutual TLS) unless plaintext is asked for.
// Challenge and Register are calls of their own (over the same channel and credentials); every later request
// travels on the institution's Session stream
// (session-stream.ts), which the coordinator answers exactly as it answers the separate calls.
import { countingClientConstructor, type WireBytes } from '@dpfed/proto/wire-byte-counter';
import * as grpc from '@grpc/grpc-js';
import { channelCredentials, type TlsMaterial } from '@dpfed/proto/tls-credentials';
import { assembleWhole, chunkTensors, packTensors, TensorAssembler, type NamedTensor, type TensorData } from '@dpfed/proto/tensor-stream';
import {
  CHANNEL_OPTIONS,
  DEFAULT_CHUNK_BYTES,
  federationClientConstructor,
  MAX_MESSAGE_BYTES,
  type AckMsg,
  type ChallengeRequest,
  type ChallengeResponse,
  type CoordinatorFrameMsg,
  type DTypeName,
  type DeclineRequestMsg,
  type Envelope,
  type RegisterRequest,
  type RegisterResponse,
  type ResultHeaderMsg,
  type SecAggMessageMsg,
  type TaskMsg,
} from '@dpfed/proto/wire';
import { ZeroCopyFraming } from '@dpfed/proto/zero-copy-framing';
import type { CoordinatorLink } from '@dpfed/proto/coordinator-link';
import { federationErrorOf } from './grpc-refusal.ts';
import { FederationError } from '@dpfed/proto/federation-error';
import { SessionStream, type FrameBody } from './session-stream.ts';

const CALL_DEADLINE_MS = 30_000;

function unexpectedFrame(expected: string, frame: CoordinatorFrameMsg): FederationError {
  return new FederationError(grpc.status.INTERNAL, `protocol: expected a ${expected} frame, got ${frame.body}`);
}

function expect<K extends keyof CoordinatorFrameMsg>(kind: K) {
  return (frame: CoordinatorFrameMsg): NonNullable<CoordinatorFrameMsg[K]> => {
    if (frame.body !== kind) throw unexpectedFrame(kind, frame);
    return frame[kind]!;
  };
}

/** The channel credentials of `tls` or of an explicit `insecure: true`; exactly one must be given. */
export function connectionCredentials(o: { tls?: TlsMaterial; insecure?: boolean }): grpc.ChannelCredentials {
  if (Boolean(o.tls) === Boolean(o.insecure)) throw new Error('tls: give either tls { ca, cert, key } (the federation CA; cert and key for mutual TLS) or insecure: true');
  return o.tls ? channelCredentials(o.tls) : grpc.credentials.createInsecure();
}

/** The gRPC transport of the SDK (proto/coordinator-link.ts). */
export class CoordinatorConnection implements CoordinatorLink {
  private readonly client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
  private readonly session: SessionStream;
  /** How upload frames are written (zero-copy from pooled frames, unless switched off). */
  private readonly framing: ZeroCopyFraming;

  constructor(
    readonly address: string,
    credentials: grpc.ChannelCredentials,
    wireBytes?: WireBytes,
    options: { zeroCopy?: boolean } = {},
  ) {
    this.framing = new ZeroCopyFraming({ zeroCopy: options.zeroCopy, poolSize: 4 });
    const Client = wireBytes ? countingClientConstructor(wireBytes) : federationClientConstructor();
    this.client = new Client(address, credentials, CHANNEL_OPTIONS) as never;
    this.session = new SessionStream(() => this.client.Session() as never);
  }

  close(): void {
    this.session.close();
    this.client.close();
  }

  /** Step 1 of registering: a fresh single-use nonce from the coordinator (proto Challenge). */
  challenge(request: ChallengeRequest): Promise<ChallengeResponse> {
    return new Promise((resolve, reject) => {
      this.client.Challenge(request, { deadline: Date.now() + CALL_DEADLINE_MS }, (error: grpc.ServiceError | null, response: ChallengeResponse) =>
        error ? reject(federationErrorOf(error)) : resolve(response),
      );
    });
  }

  register(request: RegisterRequest): Promise<RegisterResponse> {
    return new Promise((resolve, reject) => {
      this.client.Register(request, { deadline: Date.now() + CALL_DEADLINE_MS }, (error: grpc.ServiceError | null, response: RegisterResponse) =>
        error ? reject(federationErrorOf(error)) : resolve(response),
      );
    });
  }

  private request<K extends keyof CoordinatorFrameMsg>(body: FrameBody, answer: K, deadlineMs = CALL_DEADLINE_MS): Promise<NonNullable<CoordinatorFrameMsg[K]>> {
    return this.session.call(deadlineMs, (call) => call.write(body), expect(answer));
  }

  heartbeat(envelope: Envelope): Promise<{ phase: string; round: number }> {
    return this.request({ heartbeat: { envelope } }, 'heartbeat');
  }

  pullTask(envelope: Envelope, waitMs: number): Promise<TaskMsg> {
    return this.request({ pullTask: { envelope, waitMs } }, 'task', waitMs + 15_000);
  }

  decline(request: DeclineRequestMsg): Promise<AckMsg> {
    return this.request({ decline: request }, 'ack');
  }

  pushSecAgg(message: SecAggMessageMsg): Promise<AckMsg> {
    return this.request({ secagg: message }, 'ack');
  }

  /**
   * Downloads the model of `envelope` as named tensors: one copy, filled chunk by chunk (into `place` when
   * given); a model that comes in one packed frame is used where it arrived, its tensors consecutive views
   * of the received message (`place` is not asked then).
   */
  downloadModel(envelope: Envelope, chunkBytes = DEFAULT_CHUNK_BYTES, artifact = '', place?: (index: number, dtype: DTypeName, byteLength: number) => TensorData | undefined): Promise<NamedTensor[]> {
    const assembler = new TensorAssembler(undefined, Number.MAX_SAFE_INTEGER, place);
    return this.session.call(
      Number.POSITIVE_INFINITY,
      (call) => call.write({ downloadModel: { envelope, chunkBytes, artifact } }),
      (frame) => {
        if (frame.body === 'wholeModel') return assembleWhole(frame.wholeModel!.tensors, frame.wholeModel!.packedData, place);
        if (frame.body === 'modelChunk') return void assembler.push(frame.modelChunk!);
        if (frame.body === 'modelEnd') return assembler.finish();
        throw unexpectedFrame('model chunk', frame);
      },
    );
  }

  /** Uploads a result: the header, then every tensor in chunks, waiting while the stream is congested. */
  pushResult(header: ResultHeaderMsg, tensors: readonly NamedTensor[], chunkBytes = DEFAULT_CHUNK_BYTES): Promise<AckMsg> {
    return this.session.call(
      Number.POSITIVE_INFINITY,
      async (call) => {
        // a result that fits one message goes in one packed frame; a larger one as header, chunks and end
        const packed = packTensors(tensors);
        const whole = this.framing.packedResult(call.callId, header, packed.headers, packed.packed, MAX_MESSAGE_BYTES);
        if (whole) return call.writeFrame(whole.bytes, whole.release);
        await call.write({ result: { header } });
        for (const tensor of chunkTensors(tensors, chunkBytes)) {
          const frame = this.framing.resultTensor(call.callId, tensor);
          await call.writeFrame(frame.bytes, frame.release);
        }
        await call.write({ resultEnd: true });
      },
      expect('ack'),
    );
  }
}
