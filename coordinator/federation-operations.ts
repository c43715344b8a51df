// What the coordinator does for each request an institution makes, independent of how the request
// arrived: as a separate gRPC call (federation-service.ts) or as a frame on the institution's Session
// stream (session-service.ts). Every operation authenticates the envelope of its own request.
import type { IdentityKey } from '@dpfed/privacy/identity';
import { chunkTensors, TensorAssembler } from '@dpfed/proto/tensor-stream';
import {
  DEFAULT_CHUNK_BYTES,
  MAX_MESSAGE_BYTES,
  type AckMsg,
  type ChallengeRequest,
  type ChallengeResponse,
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
} from '@dpfed/proto/wire';
import type { EncodedModelCache } from './encoded-model-cache.ts';
import type { InstitutionRegistry } from './institution-registry.ts';
import type { CoordinatorReceipts } from './ledger-receipts.ts';
import type { ResultSink, RoundMachine } from './round-machine.ts';
import { invalidArgument } from './rpc-error.ts';

/** The smallest chunk a download may ask for: one element of the widest dtype. */
export const MIN_CHUNK_BYTES = 8;

export interface ServiceDeps {
  registry: InstitutionRegistry;
  machine: () => RoundMachine;
  coordinatorIdentity: IdentityKey;
  /** Receipts of the institutions' ledgers and the coordinator's signed ledger head. */
  receipts: CoordinatorReceipts;
  log?: (line: string) => void;
  /** Serialised models shared by every download of the same model (optional). */
  encodedModels?: EncodedModelCache;
  /** Session streams open now, so a coordinator that stops can end them instead of waiting for them (optional). */
  openSessions?: Set<{ end(): void }>;
}

/** A model download: chunks as messages, or (`encoded`) as serialised TensorChunk bytes shared by every download of the model. */
export type ModelChunks = { encoded: true; chunks: Buffer[] } | { encoded: false; chunks: Iterable<TensorChunkMsg> };

export interface ModelDownload {
  /** The model's parts for a packed whole frame (encoded tensor headers, the bytes), or null for an artifact: those go in chunks. */
  packed(): { headers: Buffer[]; data: Uint8Array } | null;
  /** The model in chunks, for a separate DownloadModel call or a model too large for one frame. */
  chunks(): ModelChunks;
}

/** A result arriving chunk by chunk: push() each ResultChunk, then end(). Throws name the field at fault. */
export interface ResultReceiver {
  push(chunk: ResultChunkMsg): void;
  end(): AckMsg;
  /** push() or end() threw: the result is refused for this round, with the reason. (An institution that just goes away mid-upload is not refused: it may send again.) */
  reject(reason: string): void;
}

export interface FederationOperations {
  challenge(request: ChallengeRequest): ChallengeResponse;
  register(request: RegisterRequest): RegisterResponse;
  heartbeat(request: HeartbeatRequestMsg): { phase: string; round: number };
  /** Authenticates synchronously (throws when it fails), then resolves with the task when there is one. */
  pullTask(request: PullTaskRequestMsg, onCancel: (cb: () => void) => void): Promise<TaskMsg>;
  /** Authenticates and resolves the model first, so a refused download fails before any chunk is sent. */
  downloadModel(request: ModelRequestMsg): ModelDownload;
  openResult(): ResultReceiver;
  pushSecAgg(request: SecAggMessageMsg): AckMsg;
  decline(request: DeclineRequestMsg): AckMsg;
  /** A Session stream now speaks for this (authenticated) institution. */
  sessionOpened(institutionId: string): void;
  /** That Session stream closed: with no other stream open, the institution is known gone (liveness). */
  sessionClosed(institutionId: string): void;
}

export function federationOperations(deps: ServiceDeps): FederationOperations {
  const { registry } = deps;
  return {
    challenge(request) {
      return registry.challenge(request);
    },

    register(request) {
      const institution = registry.register(request);
      deps.log?.(`registered ${institution.id}`);
      return {
        session: institution.session,
        runId: deps.machine().runId,
        coordinatorPublicKey: deps.coordinatorIdentity.publicKey,
        maxChunkBytes: DEFAULT_CHUNK_BYTES,
        maxMessageBytes: MAX_MESSAGE_BYTES,
      };
    },

    heartbeat(request) {
      registry.authenticate(request.envelope);
      const { phase, round } = deps.machine().status;
      return { phase, round };
    },

    pullTask(request, onCancel) {
      // authenticates before it returns (a refusal is thrown, not a rejected promise), so the Session stream
      // learns which institution it speaks for only from a request that authenticated
      const institution = registry.authenticate(request.envelope);
      return deps
        .machine()
        .pullTask(institution, request.waitMs, onCancel)
        .then((task) => {
          // Every task carries the coordinator's signed ledger head: after a committed round, the head with its events.
          const head = deps.receipts.coordinatorHead();
          return head ? { ...task, coordinatorLedgerHead: head } : task;
        });
    },

    downloadModel(request) {
      const institution = registry.authenticate(request.envelope);
      // a chunk holds at least one element of the widest dtype (8 bytes); 0 asks for the default
      if (request.chunkBytes > 0 && request.chunkBytes < MIN_CHUNK_BYTES) throw invalidArgument(`chunk_bytes: at least ${MIN_CHUNK_BYTES} (or 0 for the default), got ${request.chunkBytes}`);
      const chunkBytes = request.chunkBytes > 0 ? Math.min(request.chunkBytes, DEFAULT_CHUNK_BYTES) : DEFAULT_CHUNK_BYTES;
      const artifact = request.artifact ?? '';
      const machine = deps.machine();
      const list = machine.modelTensors(request.envelope, institution, artifact);
      const modelId = machine.modelIdOf(request.envelope);
      return {
        packed: () => (artifact === '' && deps.encodedModels ? deps.encodedModels.packed(modelId, () => list) : null),
        chunks: () => {
          const encoded = artifact === '' && deps.encodedModels ? deps.encodedModels.chunks(modelId, chunkBytes, () => list) : null;
          return encoded ? { encoded: true, chunks: encoded } : { encoded: false, chunks: chunkTensors(list, chunkBytes, request.envelope) };
        },
      };
    },

    openResult() {
      let sink: ResultSink | null = null;
      let assembler: TensorAssembler | null = null;
      return {
        push(chunk) {
          if (!sink) {
            if (!chunk.header) throw invalidArgument('header: the first message of a result must be its header');
            const institution = registry.authenticate(chunk.header.envelope);
            const head = chunk.header.ledgerHead;
            if (head && head.signature?.length) deps.receipts.keepResultHead(institution.id, institution.publicKey, head);
            sink = deps.machine().openResult(institution, chunk.header);
            assembler = new TensorAssembler(sink.expectTensor, 2 ** 40, sink.place);
            return;
          }
          if (!chunk.tensor) throw invalidArgument('tensor: expected tensor chunks after the header');
          assembler!.push(chunk.tensor);
        },
        end() {
          if (!sink || !assembler) throw invalidArgument('header: empty result stream');
          sink.finish(assembler.finish(sink.tensorCount));
          return { accepted: true, message: 'result accepted' };
        },
        reject(reason) {
          sink?.fail(reason);
        },
      };
    },

    pushSecAgg(request) {
      const institution = registry.authenticate(request.envelope);
      deps.machine().receiveSecAgg(institution, request);
      return { accepted: true, message: 'ok' };
    },

    decline(request) {
      const institution = registry.authenticate(request.envelope);
      deps.machine().decline(institution, request);
      return { accepted: true, message: 'decline recorded' };
    },

    sessionOpened(institutionId) {
      registry.streamOpened(institutionId);
    },

    sessionClosed(institutionId) {
      if (registry.streamClosed(institutionId) === 0) deps.machine().institutionGone(institutionId);
    },
  };
}
