// Counts the bytes of the protobuf messages a gRPC service definition sends and receives, by wrapping
// its serialisers: each message's length is added once, where grpc-js turns it into bytes or bytes into
// it (one addition per message, no copy). The count is the messages' bytes, without grpc's 5-byte
// prefix, HTTP/2 framing or TLS.
import * as grpc from '@grpc/grpc-js';
import { federationClientConstructor } from './wire.ts';

export interface WireBytes {
  sent(bytes: number): void;
  received(bytes: number): void;
}

/**
 * The same service with counting serialisers. `side` says which way each message goes: on the server
 * the requests are received and the responses sent; on a client the other way round. A serialiser that
 * hands a Buffer through unchanged (proto/wire.ts passBuffers) still does, so preframed messages keep
 * their identity.
 */
export function countingService(service: grpc.ServiceDefinition, bytes: WireBytes, side: 'server' | 'client'): grpc.ServiceDefinition {
  const counted: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  // requests go client → server, responses server → client
  const requestBytes = side === 'server' ? bytes.received : bytes.sent;
  const responseBytes = side === 'server' ? bytes.sent : bytes.received;
  for (const [name, method] of Object.entries(service)) {
    const m = method as grpc.MethodDefinition<unknown, unknown>;
    const { requestSerialize, requestDeserialize, responseSerialize, responseDeserialize } = m;
    counted[name] = {
      ...m,
      requestSerialize: (value: unknown) => {
        const buffer = requestSerialize(value);
        requestBytes(buffer.length);
        return buffer;
      },
      requestDeserialize: (buffer: Buffer) => {
        requestBytes(buffer.length);
        return requestDeserialize(buffer);
      },
      responseSerialize: (value: unknown) => {
        const buffer = responseSerialize(value);
        responseBytes(buffer.length);
        return buffer;
      },
      responseDeserialize: (buffer: Buffer) => {
        responseBytes(buffer.length);
        return responseDeserialize(buffer);
      },
    };
  }
  return counted;
}

/** The SDK's Federation client constructor with counting serialisers (requests sent, responses received). */
export function countingClientConstructor(bytes: WireBytes): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(countingService(federationClientConstructor().service, bytes, 'client'), 'Federation');
}
