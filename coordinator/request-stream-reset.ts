// Whether the client reset (cancelled) the HTTP/2 stream of a server call.
//
// A grpc-js client that cancels a client-streaming call closes its side of the HTTP/2 stream and then
// resets it (RST_STREAM CANCEL). The server sees the end of the request stream first, which grpc-js
// passes on as an ordinary half-close; the reset arrives a moment later and is only reported as the
// call's 'cancelled' event once the server writes its answer. So a server that must tell "the client
// finished sending" from "the client gave up" looks at the HTTP/2 stream's reset code, and for an upload
// that ended incomplete, waits briefly for a reset before calling it a truncated result.
//
// grpc-js does not expose that stream, so this walks its (private) call chain: ServerReadableStream.call
// → BaseServerInterceptingCall (directly, or through ServerInterceptingCall.nextCall when interceptors
// are installed) → .stream (Node's Http2Stream, whose rstCode is set when the stream closes). The shape
// is checked at run time (no stream found: only grpc-js's own 'cancelled' counts);
// test/cancelled-upload.test.ts pins the behaviour against the installed grpc-js.
import type { ServerReadableStream } from '@grpc/grpc-js';

interface Http2StreamLike {
  rstCode?: number;
  closed?: boolean;
}

function http2StreamOf(call: ServerReadableStream<unknown, unknown>): Http2StreamLike | null {
  let link = (call as unknown as { call?: unknown }).call;
  for (let depth = 0; depth < 8 && link && typeof link === 'object'; depth++) {
    const stream = (link as { stream?: unknown }).stream;
    if (stream && typeof stream === 'object' && 'rstCode' in stream) return stream as Http2StreamLike;
    link = (link as { nextCall?: unknown }).nextCall;
  }
  return null;
}

/** True when the client cancelled the call (grpc-js says so, or its HTTP/2 stream was reset by the peer). */
export function requestStreamReset(call: ServerReadableStream<unknown, unknown>): boolean {
  if (call.cancelled) return true;
  const stream = http2StreamOf(call);
  return Boolean(stream && typeof stream.rstCode === 'number' && stream.rstCode !== 0);
}

/** Resolves true as soon as the client has reset the call's stream, false when `graceMs` passed without a reset. */
export function waitForReset(call: ServerReadableStream<unknown, unknown>, graceMs = 250): Promise<boolean> {
  return new Promise((resolve) => {
    const started = Date.now();
    const check = () => {
      if (requestStreamReset(call)) return resolve(true);
      if (Date.now() - started >= graceMs) return resolve(false);
      setTimeout(check, 10);
    };
    check();
  });
}
