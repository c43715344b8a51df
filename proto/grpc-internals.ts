// The one place dpfed relies on internals of @grpc/grpc-js (pinned exactly in package.json, see "Internals we
// rely on" in README.md). Two things, each checked at run time with a fallback to grpc-js's public behaviour:
//
// 1. Preframed sends: messages that already carry grpc's 5-byte message prefix in front of them, so grpc-js
//    sends them without copying.
// 2. The server's HTTP/2 flow-control window (widenServerFlowControl), reached through the server's
//    unexported http2Servers field.
//
// Preframed sends. grpc-js frames every message it sends: it allocates a fresh Buffer of 5 + n bytes
// (compressed flag, big-endian length) and copies the n serialised bytes behind the prefix: on the
// coordinator in BaseServerInterceptingCall.serializeMessage, at the institution in
// IdentityHandler.writeMessage. For the frames that carry tensor bytes (a model download, an update upload:
// up to 4 MiB each, ten or more per round) that is a fresh buffer and a full copy per message, about 15-20 ms
// of CPU per round on each side at 1M parameters. Our frames are written by hand into pooled buffers anyway
// (proto/hand-framed-messages.ts, proto/frame-pool.ts; proto/zero-copy-framing.ts installs the wrap unless
// DPFED_ZERO_COPY=0), so they leave room for the prefix: `preframed()` marks such a
// message, and the two grpc-js methods are wrapped to write the prefix into that room and hand the whole
// buffer on. Every other message takes grpc-js's own path unchanged.
//
// The two methods are internal to grpc-js (not exported from its index), so `installPreframedSends`
// checks that each looks as expected (the function exists and frames by copying into a 5-byte prefix)
// before wrapping it, and reports what it did. Without the wrap the marked messages are copied as any
// other message: slower, the same bytes on the wire. test/grpc-internals.test.ts fails when an upgrade of
// grpc-js leaves either side unwrapped or the server window unwidened.
import type * as grpc from '@grpc/grpc-js';
import type { Http2Session } from 'node:http2';
import { createRequire } from 'node:module';

/** Bytes grpc puts in front of each message: a compressed flag and the length (big-endian uint32). */
export const MESSAGE_PREFIX_BYTES = 5;

const marked = new WeakSet<Uint8Array>();

/**
 * Marks `message` as having MESSAGE_PREFIX_BYTES of its underlying buffer free in front of it for grpc's
 * prefix, and returns it. The caller must not use those bytes, and must not write `message` twice at once.
 */
export function preframed(message: Buffer): Buffer {
  if (message.byteOffset < MESSAGE_PREFIX_BYTES) throw new Error(`preframed: a message needs ${MESSAGE_PREFIX_BYTES} free bytes in front of it, it has ${message.byteOffset}`);
  marked.add(message);
  return message;
}

/** The message with its grpc prefix written in front of it, as one Buffer over the same memory. */
function framedView(message: Buffer): Buffer {
  const framed = Buffer.from(message.buffer, message.byteOffset - MESSAGE_PREFIX_BYTES, message.length + MESSAGE_PREFIX_BYTES);
  framed[0] = 0; // not compressed
  framed.writeUInt32BE(message.length, 1);
  return framed;
}

let installed: { server: boolean; client: boolean } | null = null;

/** Looks like grpc-js's framing: a fresh buffer and a copy of the message behind a 5-byte prefix. */
function framesByCopy(fn: unknown): fn is (...args: never[]) => unknown {
  if (typeof fn !== 'function') return false;
  const source = Function.prototype.toString.call(fn);
  return source.includes('allocUnsafe') && source.includes('+ 5') && /\.copy\(output, 5\)/.test(source);
}

/** Wraps grpc-js's two framing methods (once per process); returns which sides send marked messages without a copy. */
export function installPreframedSends(): { server: boolean; client: boolean } {
  if (installed) return installed;
  const require = createRequire(import.meta.url);
  let server = false;
  let client = false;
  try {
    const { BaseServerInterceptingCall } = require('@grpc/grpc-js/build/src/server-interceptors.js');
    const proto = BaseServerInterceptingCall?.prototype;
    const original = proto?.serializeMessage;
    if (framesByCopy(original)) {
      proto.serializeMessage = function serializeMessage(this: { handler: { serialize(value: unknown): unknown } }, value: unknown) {
        if (value instanceof Buffer && marked.has(value) && this.handler.serialize(value) === value) return framedView(value);
        return original.call(this, value as never);
      };
      server = true;
    }
  } catch {
    server = false;
  }
  try {
    const { CompressionFilter } = require('@grpc/grpc-js/build/src/compression-filter.js');
    const identity = Object.getPrototypeOf(new CompressionFilter({}, {}).sendCompression);
    const original = identity?.writeMessage;
    if (identity?.constructor?.name === 'IdentityHandler' && framesByCopy(original)) {
      identity.writeMessage = function writeMessage(this: unknown, message: Buffer, compress: boolean) {
        if (!compress && marked.has(message)) return Promise.resolve(framedView(message));
        return original.call(this, message as never, compress as never);
      };
      client = true;
    }
  } catch {
    client = false;
  }
  installed = { server, client };
  return installed;
}

/**
 * grpc-js takes the flow-control window option only for its clients; a server keeps HTTP/2's 64 KiB default,
 * so every upload would stall on window updates. This widens the window of each HTTP/2 session the server
 * accepts to `windowBytes`, both the initial stream window it advertises and the connection window. It
 * reaches the server's HTTP/2 listeners through grpc-js's unexported `http2Servers` field (a Map keyed by
 * the node:http2 servers): if a grpc-js version lacks it, nothing is changed and it returns false; the
 * server then runs with the default window, slower but correct. Call after bind.
 */
export function widenServerFlowControl(server: grpc.Server, windowBytes: number): boolean {
  const listeners = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(listeners instanceof Map)) return false;
  const servers = [...listeners.keys()].filter((listener): listener is { on(event: 'session', fn: (session: Http2Session) => void): void } => typeof (listener as { on?: unknown })?.on === 'function');
  if (servers.length === 0) return false;
  for (const listener of servers) {
    listener.on('session', (session: Http2Session) => {
      try {
        session.settings({ initialWindowSize: windowBytes });
        session.setLocalWindowSize(windowBytes);
      } catch {
        // a session already closing: it keeps the default window
      }
    });
  }
  return true;
}

/** What a server call's HTTP/2 stream tells: its reset code once the peer reset it. */
export interface Http2StreamLike {
  rstCode?: number;
  closed?: boolean;
}

/**
 * The HTTP/2 stream under a grpc-js server call, walking its private call chain: ServerReadableStream.call
 * → BaseServerInterceptingCall (directly, or through ServerInterceptingCall.nextCall when interceptors are
 * installed) → .stream (Node's Http2Stream). Null when the chain does not look like that (another grpc-js
 * version): callers then rely on grpc-js's public 'cancelled' only.
 */
export function serverCallHttp2Stream(call: object): Http2StreamLike | null {
  let link = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 8 && link && typeof link === 'object'; depth++) {
    const stream = (link as { stream?: unknown }).stream;
    if (stream && typeof stream === 'object' && 'rstCode' in stream) return stream as Http2StreamLike;
    link = (link as { nextCall?: unknown }).nextCall;
  }
  return null;
}
