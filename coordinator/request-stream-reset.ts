// Whether the client reset (cancelled) the HTTP/2 stream of a server call.
//
// A grpc-js client that cancels a client-streaming call closes its side of the HTTP/2 stream and then
// resets it (RST_STREAM CANCEL). The server sees the end of the request stream first, which grpc-js
// passes on as an ordinary half-close; the reset arrives a moment later and is only reported as the
// call's 'cancelled' event once the server writes its answer. So a server that must tell "the client
// finished sending" from "the client gave up" looks at the HTTP/2 stream's reset code, and for an upload
// that ended incomplete, waits briefly for a reset before calling it a truncated result.
//
// grpc-js does not expose that stream: proto/grpc-internals.ts (serverCallHttp2Stream) finds it, checked at
// run time (no stream found: only grpc-js's own 'cancelled' counts); test/cancelled-upload.test.ts pins the
// behaviour against the installed grpc-js.
import type { ServerReadableStream } from '@grpc/grpc-js';
import { serverCallHttp2Stream } from '@dpfed/proto/grpc-internals';

/** True when the client cancelled the call (grpc-js says so, or its HTTP/2 stream was reset by the peer). */
export function requestStreamReset(call: ServerReadableStream<unknown, unknown>): boolean {
  if (call.cancelled) return true;
  const stream = serverCallHttp2Stream(call);
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
