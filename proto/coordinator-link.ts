// The institution's view of the coordinator, whatever carries the requests: the transport interface of the
// SDK. `client-sdk/coordinator-connection.ts` implements it over gRPC (TLS, a Session stream, zero-copy
// frames); `coordinator/in-memory-link.ts` implements it in the same process, for simulations and tests,
// by handing the same protobuf messages to the coordinator's federation operations. Both run the same
// coordinator and SDK code; a refusal reaches the SDK as a FederationError with its code and typed reason
// either way (proto/federation-error.ts).
import type { NamedTensor, TensorData } from './tensor-stream.ts';
import type { AckMsg, ChallengeRequest, ChallengeResponse, DTypeName, DeclineRequestMsg, Envelope, RegisterRequest, RegisterResponse, ResultHeaderMsg, SecAggMessageMsg, TaskMsg } from './wire.ts';

export interface CoordinatorLink {
  /** Where the coordinator is, for the institution's log lines (an address, or "in-memory"). */
  readonly address: string;
  /** Step 1 of registering: a fresh single-use nonce (proto Challenge). */
  challenge(request: ChallengeRequest): Promise<ChallengeResponse>;
  register(request: RegisterRequest): Promise<RegisterResponse>;
  heartbeat(envelope: Envelope): Promise<{ phase: string; round: number }>;
  /** Waits up to `waitMs` for a task (a WAIT task when none came). */
  pullTask(envelope: Envelope, waitMs: number): Promise<TaskMsg>;
  decline(request: DeclineRequestMsg): Promise<AckMsg>;
  pushSecAgg(message: SecAggMessageMsg): Promise<AckMsg>;
  /**
   * The model of `envelope` (or the named artifact) as named tensors, each in one copy; `place` may supply
   * the array a tensor is written into (it is not asked for a tensor that arrives already in one piece).
   */
  downloadModel(envelope: Envelope, chunkBytes?: number, artifact?: string, place?: (index: number, dtype: DTypeName, byteLength: number) => TensorData | undefined): Promise<NamedTensor[]>;
  /** Uploads a result: its header, then every tensor (in chunks of at most `chunkBytes`). */
  pushResult(header: ResultHeaderMsg, tensors: readonly NamedTensor[], chunkBytes?: number): Promise<AckMsg>;
  close(): void;
}
