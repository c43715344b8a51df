// The institution's end of the Session stream: one long-lived bidirectional call to the coordinator that
// carries every request after Register, each under its own call id. Opened on first use and again after
// it is lost (a coordinator restart fails the calls in flight with the stream's status, as separate calls
// would fail). A call settles on its answer, on a CallStatus frame (a FederationError with the gRPC code and reason), or
// at its deadline (DEADLINE_EXCEEDED, and the coordinator is told to drop the call).
import * as grpc from '@grpc/grpc-js';
import { FederationError, refusalReasonOf } from '@dpfed/proto/federation-error';
import type { ClientFrameMsg, CoordinatorFrameMsg } from '@dpfed/proto/wire';
import { federationErrorOf } from './grpc-refusal.ts';

export type FrameBody = Omit<ClientFrameMsg, 'callId' | 'body'>;

export interface CallHandle {
  readonly callId: number;
  /** Sends one frame of this call, waiting while the stream is congested; a no-op once the call has settled. */
  write(body: FrameBody): Promise<void>;
  /** The same for a frame already serialised with this call's id; `written` runs once grpc-js has copied it. */
  writeFrame(frame: Buffer, written?: () => void): Promise<void>;
}

type Duplex = grpc.ClientDuplexStream<ClientFrameMsg | Buffer, CoordinatorFrameMsg>;

export class SessionStream {
  private stream: Duplex | null = null;
  private readonly calls = new Map<number, { onFrame: (frame: CoordinatorFrameMsg) => void; lost: (error: Error) => void }>();
  private nextId = 1;

  constructor(private readonly open: () => Duplex) {}

  private current(): Duplex {
    if (this.stream) return this.stream;
    const stream = this.open();
    const lost = (error: Error) => {
      if (this.stream === stream) this.stream = null;
      const calls = [...this.calls.values()];
      this.calls.clear();
      for (const call of calls) call.lost(error);
    };
    stream.on('data', (frame: CoordinatorFrameMsg) => this.calls.get(frame.callId)?.onFrame(frame));
    stream.on('error', (error) => lost(federationErrorOf(error)));
    stream.on('end', () => lost(new FederationError(grpc.status.UNAVAILABLE, 'the coordinator ended the session stream')));
    this.stream = stream;
    return stream;
  }

  /**
   * One call: `start` sends its frames; `onFrame` reads each answer frame and returns the result once it
   * has one (undefined: more frames to come). Rejects with a FederationError on an error frame or the deadline.
   */
  call<T>(deadlineMs: number, start: (handle: CallHandle) => Promise<void>, onFrame: (frame: CoordinatorFrameMsg) => T | undefined): Promise<T> {
    const stream = this.current();
    const callId = this.nextId;
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (error: Error | null, value?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.calls.delete(callId);
        if (error) reject(error);
        else resolve(value as T);
      };
      const abandon = (error: Error) => {
        if (settled) return;
        settle(error);
        if (this.stream === stream) stream.write({ callId, cancel: true });
      };
      if (Number.isFinite(deadlineMs)) timer = setTimeout(() => abandon(new FederationError(grpc.status.DEADLINE_EXCEEDED, `no answer within ${deadlineMs} ms`)), deadlineMs);
      let writing = true;
      this.calls.set(callId, {
        lost: (error) => settle(error),
        onFrame: (frame) => {
          if (frame.body === 'error') {
            settle(new FederationError(frame.error!.code, frame.error!.message, refusalReasonOf(frame.error!.reason)));
            // a refused upload: tell the coordinator to drop the frames still on their way
            if (writing && this.stream === stream) stream.write({ callId, cancel: true });
            return;
          }
          try {
            const value = onFrame(frame);
            if (value !== undefined) settle(null, value);
          } catch (error) {
            abandon(error as Error);
          }
        },
      });
      const send = async (frame: ClientFrameMsg | Buffer, written?: () => void) => {
        if (settled) return;
        if (!stream.write(frame, written)) await drained(stream, () => settled);
      };
      const handle: CallHandle = { callId, write: (body) => send({ callId, ...body }), writeFrame: send };
      start(handle)
        .catch((error) => abandon(error as Error))
        .finally(() => (writing = false));
    });
  }

  close(): void {
    const stream = this.stream;
    this.stream = null;
    if (stream) {
      stream.end();
      stream.cancel();
    }
  }
}

/** Resolves when the stream drains, or ends, or the call no longer needs to write. */
function drained(stream: Duplex, gone: () => boolean): Promise<void> {
  if (gone()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}
