// Loads the dpfed.v1 contract for @grpc/grpc-js, with explicit message-size limits, and gives the
// decoded messages TypeScript shapes (proto-loader: camelCase fields, bytes as Buffer, enums as names,
// 64-bit integers as numbers).
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import type { LedgerEvent } from '../privacy/ledger-event.ts';
import { installPreframedSends, MESSAGE_PREFIX_BYTES, widenServerFlowControl as widenHttp2Windows } from './grpc-internals.ts';
import { tolerantRequests } from './request-decoding.ts';

export const PROTOCOL_VERSION = 1;
/** Default tensor chunk: 4 MiB of payload per message. */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
/** Hard cap on one message either way: a chunk plus its envelope. Never raised for large models. */
export const MAX_MESSAGE_BYTES = DEFAULT_CHUNK_BYTES + 64 * 1024;

const PROTO_PATH = fileURLToPath(new URL('./dpfed/v1/federation.proto', import.meta.url));

let cached: grpc.ServiceDefinition | undefined;

export function federationService(): grpc.ServiceDefinition {
  if (!cached) {
    const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as { dpfed: { v1: { Federation: { service: grpc.ServiceDefinition } } } };
    cached = pkg.dpfed.v1.Federation.service;
  }
  return cached;
}

/**
 * The service as the coordinator serves it: identical on the wire, except that DownloadModel and Session
 * may also be handed messages already serialised (Buffers), which are sent as they are (without grpc-js's
 * copy when they are preframed: proto/grpc-internals.ts), and a request that is not valid protobuf reaches
 * its handler as an UndecodableMessage instead of failing in grpc-js with INTERNAL.
 */
export function federationServerService(): grpc.ServiceDefinition {
  installPreframedSends();
  // every request that does not decode reaches its handler as an UndecodableMessage (proto/request-decoding.ts)
  const base = Object.fromEntries(Object.entries(federationService()).map(([name, m]) => [name, tolerantRequests(m)]));
  return { ...base, DownloadModel: passBuffers(base.DownloadModel, 'response'), Session: passBuffers(base.Session, 'response') };
}

/** A method whose serialiser also takes messages already serialised (Buffers) and sends them as they are. */
function passBuffers(definition: grpc.MethodDefinition<unknown, unknown>, side: 'request' | 'response'): grpc.MethodDefinition<unknown, unknown> {
  const key = side === 'request' ? 'requestSerialize' : 'responseSerialize';
  const serialize = definition[key] as (value: unknown) => Buffer;
  return { ...definition, [key]: (value: unknown) => (Buffer.isBuffer(value) ? value : serialize(value)) };
}

/** A TensorChunk message as protobuf bytes. */
export function serializeTensorChunk(chunk: TensorChunkMsg): Buffer {
  return (federationService().DownloadModel.responseSerialize as (chunk: TensorChunkMsg) => Buffer)(chunk);
}

/**
 * A CoordinatorFrame carrying an already serialised TensorChunk: the bytes protobuf would produce for
 * { callId, modelChunk }, written directly (field 4, length-delimited, then field 1, varint) so the
 * encoded model is shared by every institution's stream instead of being encoded again per call.
 */
export function modelChunkFrame(callId: number, encodedChunk: Uint8Array, allocate: (size: number) => Buffer = Buffer.allocUnsafe): Buffer {
  return joined([lengthDelimited(4, encodedChunk.length), encodedChunk, callIdField(callId)], allocate);
}

/**
 * A ClientFrame { callId, result: { tensor: chunk } } written directly into one buffer: the chunk's fields
 * but its data encoded by protobuf, then the data (field 7) copied once from the caller's tensor, instead
 * of protobuf allocating a fresh message per chunk. Protobuf readers accept fields in any order.
 */
export function resultTensorFrame(callId: number, chunk: TensorChunkMsg, allocate: (size: number) => Buffer = Buffer.allocUnsafe): Buffer {
  const tensor = tensorChunkParts(chunk);
  const tensorHead = lengthDelimited(2, tensor.length); // ResultChunk.tensor
  const resultHead = lengthDelimited(5, tensorHead.length + tensor.length); // ClientFrame.result
  return joined([resultHead, tensorHead, ...tensor.parts, callIdField(callId)], allocate);
}

/**
 * A CoordinatorFrame { callId, wholeModel: { tensors, packedData } } written directly: the tensors'
 * headers (already serialised TensorChunks without data), then every tensor's bytes in `packed`, aligned
 * for the receiver (packedFrame). Null when it would exceed `maxBytes`: the model then goes in chunks.
 */
export function packedModelFrame(callId: number, encodedHeaders: readonly Uint8Array[], packed: Uint8Array, maxBytes: number, allocate: (size: number) => Buffer = Buffer.allocUnsafe): Buffer | null {
  return packedFrame([{ field: 8, leading: modelBatchHeaders(encodedHeaders) }], MODEL_BATCH_PACKED, packed, callId, maxBytes, allocate); // CoordinatorFrame.whole_model
}

/**
 * A CoordinatorFrame { callId, task: { ...task, model: { tensors, packedData } } }: a task with the model
 * it refers to attached, packed and aligned like packedModelFrame. Null when it would exceed `maxBytes`.
 */
export function taskWithModelFrame(callId: number, task: TaskMsg, encodedHeaders: readonly Uint8Array[], packed: Uint8Array, maxBytes: number, allocate: (size: number) => Buffer = Buffer.allocUnsafe): Buffer | null {
  const taskFields = (federationService().PullTask.responseSerialize as (value: TaskMsg) => Buffer)({ ...task, model: null });
  // CoordinatorFrame.task holds the task's own fields, then Task.model (field 10)
  return packedFrame([{ field: 3, leading: [taskFields] }, { field: 10, leading: modelBatchHeaders(encodedHeaders) }], MODEL_BATCH_PACKED, packed, callId, maxBytes, allocate);
}

/**
 * A ClientFrame { callId, wholeResult: { header, tensors, packedData } } written directly: the header,
 * the tensors' headers (TensorChunks without data, offsets into `packed`), then the bytes, aligned for the
 * receiver. Null when it would exceed `maxBytes`: the result then goes in chunks.
 */
export function packedResultFrame(callId: number, header: ResultHeaderMsg, tensorHeaders: readonly TensorChunkMsg[], packed: Uint8Array, maxBytes: number, allocate: (size: number) => Buffer = Buffer.allocUnsafe): Buffer | null {
  // ResultChunk { header } encodes as field 1, as ResultBatch.header is: the same bytes.
  const headerField = (federationService().PushResult.requestSerialize as (value: unknown) => Buffer)({ header });
  const parts: ArrayLike<number>[] = [headerField];
  for (const chunk of tensorHeaders) {
    const encoded = serializeTensorChunk(chunk);
    parts.push(lengthDelimited(2, encoded.length), encoded); // ResultBatch.tensors
  }
  return packedFrame([{ field: 10, leading: parts }], { padding: 4, data: 3 }, packed, callId, maxBytes, allocate); // ClientFrame.whole_result
}

/** ModelBatch's padding and packed_data fields. */
const MODEL_BATCH_PACKED = { padding: 3, data: 2 };

/** ModelBatch.tensors: each encoded header as field 1. */
function modelBatchHeaders(encodedHeaders: readonly Uint8Array[]): ArrayLike<number>[] {
  return encodedHeaders.flatMap((h) => [lengthDelimited(1, h.length), h]);
}

/**
 * A frame whose last nested message ends with a padding field and a data field holding `packed`, then
 * the call id. `nesting` lists the enclosing length-delimited fields from the outside in, each with the
 * parts that precede the next level. The padding (0-7 bytes) is chosen so that the data starts at a
 * multiple of 4 counted from the start of grpc's 5-byte message prefix: where grpc-js reassembles a
 * received message (a buffer of its own, prefix first), the receiver can then view the bytes as float32
 * without copying them.
 */
function packedFrame(nesting: readonly { field: number; leading: readonly ArrayLike<number>[] }[], fields: { padding: number; data: number }, packed: Uint8Array, callId: number, maxBytes: number, allocate: (size: number) => Buffer): Buffer | null {
  const build = (pad: number) => {
    let body: ArrayLike<number>[] = [lengthDelimited(fields.padding, pad), new Uint8Array(pad), lengthDelimited(fields.data, packed.length)];
    let dataAt = totalLength(body); // where the data starts, counted from the start of `body`
    for (let level = nesting.length - 1; level >= 0; level--) {
      const inner = [...nesting[level].leading, ...body];
      const head = lengthDelimited(nesting[level].field, totalLength(inner) + packed.length);
      dataAt += head.length + totalLength(nesting[level].leading);
      body = [head, ...inner];
    }
    return { parts: [...body, packed, callIdField(callId)], dataAt };
  };
  for (let pad = 0; pad < 8; pad++) {
    const candidate = build(pad);
    if ((MESSAGE_PREFIX_BYTES + candidate.dataAt) % 4 === 0) return joinedWithin(candidate.parts, maxBytes, allocate);
  }
  return joinedWithin(build(0).parts, maxBytes, allocate); // not reached: eight paddings cover every residue even when a length grows a byte
}

/** A TensorChunk in parts: its fields but data as protobuf encodes them, then the data field's head and the data. */
function tensorChunkParts(chunk: TensorChunkMsg): { parts: ArrayLike<number>[]; length: number } {
  const { data: _data, ...fields } = chunk;
  const parts = [serializeTensorChunk(fields as TensorChunkMsg), lengthDelimited(7, chunk.data.length), chunk.data];
  return { parts, length: totalLength(parts) };
}

/** `parts` one after another in one buffer from `allocate`. */
function joined(parts: readonly ArrayLike<number>[], allocate: (size: number) => Buffer): Buffer {
  const frame = allocate(totalLength(parts));
  let at = 0;
  for (const part of parts) {
    frame.set(part, at);
    at += part.length;
  }
  return frame;
}

/** joined(), or null when the parts come to more than `maxBytes`. */
function joinedWithin(parts: readonly ArrayLike<number>[], maxBytes: number, allocate: (size: number) => Buffer): Buffer | null {
  return totalLength(parts) > maxBytes ? null : joined(parts, allocate);
}

function totalLength(parts: readonly ArrayLike<number>[]): number {
  return parts.reduce((n, part) => n + part.length, 0);
}

/** The tag and length of a length-delimited field. */
function lengthDelimited(field: number, length: number): number[] {
  return [(field << 3) | 2, ...varint(length)];
}

/** Field 1 (call_id) of a session frame. */
function callIdField(callId: number): number[] {
  return [0x08, ...varint(callId)];
}

function varint(value: number): number[] {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return bytes;
}

/**
 * HTTP/2 flow-control window, per stream and per connection, both ways. The protocol default (64 KiB) makes
 * a 400 KB model take several window round trips; in the round-overhead bench, 10 clients moving 400 KB each way took
 * 57 ms per round with the default window and 23–29 ms with this one. Two chunks: a receiver never buffers
 * more than that per stream.
 */
export const FLOW_CONTROL_WINDOW = 2 * DEFAULT_CHUNK_BYTES;

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
  // Each connection object gets its own HTTP/2 connection, as an institution in its own process has. By
  // default grpc-js lets every client in a process with the same target share one connection, and several
  // institutions' Session streams moving megabytes at once on one connection stalled here (1M-parameter
  // rounds with 5 or more institutions in one process never finished).
  'grpc.use_local_subchannel_pool': 1,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
};

/**
 * Widens the HTTP/2 flow-control window of each session `server` accepts to FLOW_CONTROL_WINDOW (grpc-js
 * applies the window option to clients only). Through a grpc-js internal, fenced in proto/grpc-internals.ts:
 * false when that internal is missing, and the server then keeps the default window. Call after bind.
 */
export function widenServerFlowControl(server: grpc.Server): boolean {
  return widenHttp2Windows(server, FLOW_CONTROL_WINDOW);
}

/** The client of the service; its Session stream may also be written frames already serialised (Buffers), preframed ones without grpc-js's copy. */
export function federationClientConstructor(): grpc.ServiceClientConstructor {
  installPreframedSends();
  const base = federationService();
  return grpc.makeGenericClientConstructor({ ...base, Session: passBuffers(base.Session, 'request') }, 'Federation');
}

// ---- message shapes (as decoded by proto-loader with the options above) ----

export interface Envelope {
  runId: string;
  round: number;
  modelVersion: number;
  institutionId: string;
  session: Uint8Array;
}

export interface PrivacyBudgetMsg {
  epsilon: number;
  delta: number;
}

export interface ChallengeRequest {
  institutionId: string;
}

export interface ChallengeResponse {
  nonce: Uint8Array;
  expiresInMs: number;
  receiptSeq: number;
  coordinatorPublicKey: Uint8Array;
  /** The run's public data schema as JSON ('' when it has none); proto-loader decodes an absent field as ''. */
  schemaJson: string;
}

/** A ledger head signed by the ledger's countersigner (a receipt; see privacy/receipts.ts). */
export interface LedgerHeadMsg {
  seq: number;
  hash: Uint8Array;
  signature: Uint8Array;
}

export interface RegisterRequest {
  institutionId: string;
  identityPublicKey: Uint8Array;
  protocolVersion: number;
  budget?: PrivacyBudgetMsg | null;
  clientVersion: string;
  /** Ed25519 over registrationDeclaration(...) (proto/registration.ts). */
  signature: Uint8Array;
  /** The ChallengeResponse nonce. */
  nonce: Uint8Array;
  /** Optional public example count the institution declares (0: none); never its true row count. Signed. */
  declaredExamples: number;
  /** SHA-256 of the institution's data schema (32 bytes; empty: none). Signed. */
  schemaHash: Uint8Array;
  ledgerHead?: LedgerHeadMsg | null;
  anchorHash: Uint8Array;
}

export interface RegisterResponse {
  session: Uint8Array;
  runId: string;
  coordinatorPublicKey: Uint8Array;
  maxChunkBytes: number;
  maxMessageBytes: number;
}

export type TaskKind = 'WAIT' | 'TRAIN' | 'EVALUATE' | 'DONE' | 'SECAGG_SHARE_KEYS' | 'SECAGG_MASKED_INPUT' | 'SECAGG_UNMASK' | 'CKKS_KEYGEN' | 'CKKS_DECRYPT' | 'CROSS_SITE_EVALUATE';
export type DTypeName = 'FLOAT32' | 'INT32' | 'UINT32' | 'FLOAT64' | 'BYTES';

export interface CkksTaskMsg {
  publicKey: Uint8Array;
  vectorLength: number;
  weightCap: number;
  summands: number;
  keyHolder: string;
  /** Client-level DP: institutions offered the round; each adds the noise share for this many. */
  offered?: number;
}

export interface SignedKeysMsg {
  institutionId: string;
  index: number;
  encryptionPublicKey: Uint8Array;
  maskPublicKey: Uint8Array;
  signature: Uint8Array;
}

export interface EncryptedShareMsg {
  fromInstitution: string;
  toInstitution: string;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

export interface ShareMsg {
  aboutInstitution: string;
  value: Uint8Array;
}

export interface SecAggTaskMsg {
  collection: string;
  threshold: number;
  keys: SignedKeysMsg[];
  shares: EncryptedShareMsg[];
  survivors: string[];
  dropped: string[];
  neighbours: string[];
  quantisationJson: string;
  index: number;
  identities: { institutionId: string; identityPublicKey: Uint8Array }[];
  clientNoiseSigma: number;
  vectorLength: number;
  graphNeighbours: number;
}

export interface TaskMsg {
  envelope: Envelope;
  kind: TaskKind;
  modelSpecJson: string;
  configJson: string;
  retryAfterMs: number;
  message: string;
  secagg?: SecAggTaskMsg | null;
  ckks?: CkksTaskMsg | null;
  modelId: string;
  /** Session stream only: the model the task refers to, packed (ModelBatch), when the coordinator attached it. */
  model?: { tensors: TensorChunkMsg[]; packedData: Uint8Array } | null;
  /** The coordinator's ledger head, signed with its key (a receipt for the institution to keep). */
  coordinatorLedgerHead?: LedgerHeadMsg | null;
}

export interface TensorChunkMsg {
  envelope?: Envelope | null;
  name: string;
  shape: number[];
  dtype: DTypeName;
  totalBytes: number;
  offset: number;
  data: Uint8Array;
  tensorIndex: number;
  tensorCount: number;
}

export type ResultKindName = 'TRAIN_RESULT' | 'EVALUATE_RESULT' | 'CKKS_DECRYPTED_SUM';

/** A privacy event on the wire: the ledger's event (privacy/ledger-event.ts) and the institution's signature. */
export interface PrivacyEventMsg extends Omit<LedgerEvent, 'mode'> {
  mode: string;
  signature: Uint8Array;
}

export interface ResultHeaderMsg {
  envelope: Envelope;
  kind: ResultKindName;
  numExamples: number;
  metrics: Record<string, number>;
  privacyEvent?: PrivacyEventMsg | null;
  tensorCount: number;
  masked: boolean;
  encrypted?: boolean;
  /** Record- or client-level DP: the institution's own ledger head after recording the round's event, signed with its identity key. */
  ledgerHead?: LedgerHeadMsg | null;
}

export interface ResultChunkMsg {
  header?: ResultHeaderMsg | null;
  tensor?: TensorChunkMsg | null;
  part?: 'header' | 'tensor';
}

export interface AckMsg {
  accepted: boolean;
  message: string;
}

export interface DeclineRequestMsg {
  envelope: Envelope;
  reason: string;
  projectedEpsilon: number;
  budgetEpsilon: number;
  detail: string;
}

export interface UnmaskBodyMsg {
  selfMaskShares: ShareMsg[];
  maskKeyShares: ShareMsg[];
  signature: Uint8Array;
}

export interface SecAggMessageMsg {
  envelope: Envelope;
  collection: string;
  advertise?: SignedKeysMsg | null;
  shareKeys?: { shares: EncryptedShareMsg[] } | null;
  unmask?: UnmaskBodyMsg | null;
  ckksPublicKey?: { key: Uint8Array; signature: Uint8Array } | null;
  body?: 'advertise' | 'shareKeys' | 'unmask' | 'ckksPublicKey';
}

export interface HeartbeatRequestMsg {
  envelope: Envelope;
}

export interface PullTaskRequestMsg {
  envelope: Envelope;
  waitMs: number;
}

export interface ModelRequestMsg {
  envelope: Envelope;
  chunkBytes: number;
  artifact: string;
}

export interface CallStatusMsg {
  code: number;
  message: string;
  /** RefusalReason by name (proto/federation-error.ts). */
  reason?: string;
}

/** One frame of the Session stream, institution → coordinator; `body` names the part that is set. */
export interface ClientFrameMsg {
  callId: number;
  heartbeat?: HeartbeatRequestMsg | null;
  pullTask?: PullTaskRequestMsg | null;
  downloadModel?: ModelRequestMsg | null;
  result?: ResultChunkMsg | null;
  resultEnd?: boolean;
  secagg?: SecAggMessageMsg | null;
  decline?: DeclineRequestMsg | null;
  cancel?: boolean;
  wholeResult?: { header: ResultHeaderMsg; tensors: TensorChunkMsg[]; packedData: Uint8Array } | null;
  body?: 'heartbeat' | 'pullTask' | 'downloadModel' | 'result' | 'resultEnd' | 'secagg' | 'decline' | 'cancel' | 'wholeResult';
}

/** One frame of the Session stream, coordinator → institution. */
export interface CoordinatorFrameMsg {
  callId: number;
  heartbeat?: { phase: string; round: number } | null;
  task?: TaskMsg | null;
  modelChunk?: TensorChunkMsg | null;
  modelEnd?: boolean;
  ack?: AckMsg | null;
  error?: CallStatusMsg | null;
  wholeModel?: { tensors: TensorChunkMsg[]; packedData: Uint8Array } | null;
  body?: 'heartbeat' | 'task' | 'modelChunk' | 'modelEnd' | 'ack' | 'error' | 'wholeModel';
}
