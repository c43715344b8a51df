// Requests that are not valid protobuf. grpc-js answers a request its deserialiser cannot decode with
// INTERNAL "Error deserializing request", which names nothing and reads as a server fault. The
// coordinator's deserialisers are wrapped instead (tolerantRequests): a message that does not decode is
// handed to the handler as an UndecodableMessage, which the handler refuses with INVALID_ARGUMENT naming
// what was wrong, and a Session stream that received one keeps serving its other calls.
import type * as grpc from '@grpc/grpc-js';

export class UndecodableMessage {
  constructor(
    /** The protobuf message type the bytes should have been (e.g. "HeartbeatRequest"). */
    readonly type: string,
    /** The decoder's reason. */
    readonly reason: string,
    readonly byteLength: number,
    /** A Session frame's call_id when the bytes hold one although the frame does not decode (undefined otherwise). */
    readonly callId?: number,
  ) {}

  /** The refusal text, naming `field` (the request, or the stream frame) as the field at fault. */
  describe(field: string): string {
    return `${field}: ${this.byteLength} bytes that are not a valid ${this.type} protobuf message (${this.reason})`;
  }
}

/** A method whose request deserialiser returns an UndecodableMessage instead of throwing. */
export function tolerantRequests(definition: grpc.MethodDefinition<unknown, unknown>): grpc.MethodDefinition<unknown, unknown> {
  const deserialize = definition.requestDeserialize;
  const type = (definition as { requestTypeName?: string }).requestTypeName ?? 'request';
  return {
    ...definition,
    requestDeserialize: (bytes: Buffer) => {
      try {
        return deserialize(bytes);
      } catch (error) {
        const callId = (error as { callId?: unknown })?.callId;
        return new UndecodableMessage(type, error instanceof Error ? error.message : String(error), bytes.length, typeof callId === 'number' ? callId : undefined);
      }
    },
  };
}
