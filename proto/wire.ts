// The dpfed.v1 contract for @grpc/grpc-js: the service definitions built from the code ts-proto generates
// from proto/dpfed/v1/federation.proto (proto/generated/, `npm run proto:generate`), explicit message-size
// limits, and the names the rest of the code uses for the generated message types (camelCase fields,
// bytes as Uint8Array views into the received message, enums as their names, 64-bit integers as numbers).
import * as grpc from '@grpc/grpc-js';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import * as pb from './generated/dpfed/v1/federation.ts';
import { widenServerFlowControl as widenHttp2Windows } from './grpc-internals.ts';
import { tolerantRequests } from './request-decoding.ts';

export { PROTOCOL_VERSION } from './shared-names.ts';
/** Default tensor chunk: 4 MiB of payload per message. */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
/** Hard cap on one message either way: a chunk plus its envelope. Never raised for large models. */
export const MAX_MESSAGE_BYTES = DEFAULT_CHUNK_BYTES + 64 * 1024;

/** A generated message's codec (encode to a writer, decode from bytes, fill in defaults). */
interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
  fromPartial(object: never): T;
}

/** The generated message types by codec, so a method's request type can be named (e.g. in UndecodableMessage). */
const TYPE_NAMES = new Map<unknown, string>(Object.entries(pb).map(([name, value]) => [value, name]));

/**
 * The bytes `codec` encodes, as a Buffer over the same memory (grpc-js wants a Buffer; no copy). A field
 * left out (or null) is encoded as its default, as protobuf defines it: the generated encoder itself
 * expects every field present, so the message first goes through the generated fromPartial (which copies
 * the structure, not the bytes fields).
 */
export function encodeMessage<T>(codec: MessageCodec<T>, message: pb.DeepPartial<T>): Buffer {
  const bytes = codec.encode(codec.fromPartial(message as never)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The decoders of the two Session frames also set `body`, the name of the oneof member the frame carries
 * (as a switch needs it). A frame whose bytes set more than one member keeps the first in the .proto's
 * order and drops the others.
 */
const FRAME_BODIES = new Map<unknown, readonly string[]>([
  [pb.ClientFrame, ['heartbeat', 'pullTask', 'downloadModel', 'result', 'resultEnd', 'secagg', 'decline', 'cancel', 'wholeResult']],
  [pb.CoordinatorFrame, ['heartbeat', 'task', 'modelChunk', 'modelEnd', 'ack', 'error', 'wholeModel']],
]);

function decoderOf(codec: MessageCodec<unknown>): (bytes: Buffer) => unknown {
  const bodies = FRAME_BODIES.get(codec);
  if (!bodies) return (bytes) => codec.decode(bytes);
  return (bytes) => {
    let frame: Record<string, unknown>;
    try {
      frame = codec.decode(bytes) as Record<string, unknown>;
    } catch (error) {
      // the refusal can still go under the frame's own call id when its bytes hold one (proto/request-decoding.ts)
      throw Object.assign(error instanceof Error ? error : new Error(String(error)), { callId: callIdOf(bytes) });
    }
    for (const name of bodies) {
      if (frame[name] === undefined) continue;
      if (frame.body === undefined) frame.body = name;
      else delete frame[name];
    }
    return frame;
  };
}

/**
 * Field 1 (call_id) of a Session frame whose other fields do not decode (a 64-bit value past 2^53, a
 * truncated field): the top-level fields are skipped one by one; undefined when the bytes give no call id.
 */
function callIdOf(bytes: Uint8Array): number | undefined {
  try {
    const reader = new BinaryReader(bytes);
    let callId: number | undefined;
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === 0) callId = reader.uint32();
      else reader.skip(wireType);
    }
    return callId;
  } catch {
    return undefined;
  }
}

let cached: grpc.ServiceDefinition | undefined;

/** The Federation service for grpc-js, every message through the generated encoder and decoder. */
export function federationService(): grpc.ServiceDefinition {
  if (!cached) {
    const methods = Object.values(pb.FederationDefinition.methods).map((m) => {
      const request = m.requestType as MessageCodec<unknown>;
      const response = m.responseType as MessageCodec<unknown>;
      const definition = {
        path: `/${pb.FederationDefinition.fullName}/${m.name}`,
        requestStream: m.requestStream,
        responseStream: m.responseStream,
        requestSerialize: (value: unknown) => encodeMessage(request, value as never),
        requestDeserialize: decoderOf(request),
        responseSerialize: (value: unknown) => encodeMessage(response, value as never),
        responseDeserialize: decoderOf(response),
        originalName: m.name,
        requestTypeName: TYPE_NAMES.get(request) ?? 'request',
      };
      return [m.name, definition] as const;
    });
    cached = Object.fromEntries(methods) as grpc.ServiceDefinition;
  }
  return cached;
}

/**
 * The service as the coordinator serves it: identical on the wire, except that DownloadModel and Session
 * may also be handed messages already serialised (Buffers), which are sent as they are (the frames of
 * proto/zero-copy-framing.ts), and a request that is not valid protobuf reaches its handler as an
 * UndecodableMessage instead of failing in grpc-js with INTERNAL.
 */
export function federationServerService(): grpc.ServiceDefinition {
  // every request that does not decode reaches its handler as an UndecodableMessage (proto/request-decoding.ts)
  const base = Object.fromEntries(Object.entries(federationService()).map(([name, m]) => [name, tolerantRequests(m)]));
  return { ...base, DownloadModel: passBuffers(base.DownloadModel, 'response'), Session: passBuffers(base.Session, 'response') };
}

/** The client of the service; its Session stream may also be written frames already serialised (Buffers). */
export function federationClientConstructor(): grpc.ServiceClientConstructor {
  const base = federationService();
  return grpc.makeGenericClientConstructor({ ...base, Session: passBuffers(base.Session, 'request') }, 'Federation');
}

/** A method whose serialiser also takes messages already serialised (Buffers) and sends them as they are. */
function passBuffers(definition: grpc.MethodDefinition<unknown, unknown>, side: 'request' | 'response'): grpc.MethodDefinition<unknown, unknown> {
  const key = side === 'request' ? 'requestSerialize' : 'responseSerialize';
  const serialize = definition[key] as (value: unknown) => Buffer;
  return { ...definition, [key]: (value: unknown) => (Buffer.isBuffer(value) ? value : serialize(value)) };
}

/** A TensorChunk message as protobuf bytes. */
export function serializeTensorChunk(chunk: TensorChunkMsg): Buffer {
  return encodeMessage(pb.TensorChunk, chunk);
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

// ---- the generated message types under the names the code uses ----
//
// The message types are those ts-proto generates, except that a request's or result's `envelope` is typed as
// present: the handlers authenticate it first and refuse a message that lacks it (a decoded message whose
// envelope was not on the wire has it undefined).

type Enveloped<T extends { envelope?: pb.Envelope | undefined }> = Omit<T, 'envelope'> & { envelope: pb.Envelope };

export type Envelope = pb.Envelope;
export type PrivacyBudgetMsg = pb.PrivacyBudget;
export type ChallengeRequest = pb.ChallengeRequest;
export type ChallengeResponse = pb.ChallengeResponse;
/** A ledger head signed by the ledger's countersigner (a receipt; see privacy/receipts.ts). */
export type LedgerHeadMsg = pb.LedgerHead;
export type RegisterRequest = pb.RegisterRequest;
export type RegisterResponse = pb.RegisterResponse;
export type TaskKind = pb.TaskKind;
export type DTypeName = pb.DType;
export type CkksTaskMsg = pb.CkksTask;
export type SignedKeysMsg = pb.SignedKeys;
export type EncryptedShareMsg = pb.EncryptedShare;
export type ShareMsg = pb.Share;
export type SecAggTaskMsg = pb.SecAggTask;
export type QuantisationMsg = pb.Quantisation;
export type TaskConfigMsg = pb.TaskConfig;
export type ModelSpecMsg = pb.ModelSpec;
export type TensorChunkMsg = pb.TensorChunk;
export type ResultKindName = pb.ResultKind;
/** A privacy event on the wire: the ledger's event (privacy/ledger-event.ts) and the institution's signature. */
export type PrivacyEventMsg = pb.PrivacyEvent;
export type AckMsg = pb.Ack;
export type UnmaskBodyMsg = pb.UnmaskBody;
export type CallStatusMsg = pb.CallStatus;
export type HeartbeatResponseMsg = pb.HeartbeatResponse;
export type TaskMsg = Enveloped<pb.Task>;
/** `encrypted` may be left out (false): only CKKS results set it. */
export type ResultHeaderMsg = Omit<Enveloped<pb.ResultHeader>, 'encrypted'> & { encrypted?: boolean };
export type DeclineRequestMsg = Enveloped<pb.DeclineRequest>;
export type SecAggMessageMsg = Enveloped<pb.SecAggMessage>;
export type HeartbeatRequestMsg = Enveloped<pb.HeartbeatRequest>;
export type PullTaskRequestMsg = Enveloped<pb.PullTaskRequest>;
export type ModelRequestMsg = Enveloped<pb.ModelRequest>;
export type ModelBatchMsg = pb.ModelBatch;
export type ResultBatchMsg = Omit<pb.ResultBatch, 'header'> & { header: ResultHeaderMsg };

export interface ResultChunkMsg {
  header?: ResultHeaderMsg | undefined;
  tensor?: TensorChunkMsg | undefined;
}

/** One frame of the Session stream, institution → coordinator; `body` names the member that is set (set by the decoder). */
export interface ClientFrameMsg {
  callId: number;
  heartbeat?: HeartbeatRequestMsg | undefined;
  pullTask?: PullTaskRequestMsg | undefined;
  downloadModel?: ModelRequestMsg | undefined;
  result?: ResultChunkMsg | undefined;
  resultEnd?: boolean | undefined;
  secagg?: SecAggMessageMsg | undefined;
  decline?: DeclineRequestMsg | undefined;
  cancel?: boolean | undefined;
  wholeResult?: ResultBatchMsg | undefined;
  body?: Exclude<keyof pb.ClientFrame, 'callId'>;
}

/** One frame of the Session stream, coordinator → institution; `body` as in ClientFrameMsg. */
export interface CoordinatorFrameMsg {
  callId: number;
  heartbeat?: HeartbeatResponseMsg | undefined;
  task?: TaskMsg | undefined;
  modelChunk?: TensorChunkMsg | undefined;
  modelEnd?: boolean | undefined;
  ack?: AckMsg | undefined;
  error?: CallStatusMsg | undefined;
  wholeModel?: ModelBatchMsg | undefined;
  body?: Exclude<keyof pb.CoordinatorFrame, 'callId'>;
}

// every shape above is a message the generated encoder accepts (through fromPartial, see encodeMessage):
// a field renamed or retyped in the .proto fails to compile here
type Encodable<Ours, Generated> = Ours extends pb.DeepPartial<Generated> ? true : never;
export const SHAPES_ARE_ENCODABLE: [Encodable<ClientFrameMsg, pb.ClientFrame>, Encodable<CoordinatorFrameMsg, pb.CoordinatorFrame>] = [true, true];
