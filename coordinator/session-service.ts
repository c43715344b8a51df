// The Session stream: one long-lived bidirectional call per institution carrying the requests of the
// separate calls as frames (heartbeat, pull task, download model, push result, secure-aggregation
// messages, decline), each answered on the same stream under its call id. The requests go to the same
// federation operations as the separate calls, so authentication, validation and errors are the same;
// an error is a CallStatus frame with the gRPC code the separate call would have ended with.
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import { UndecodableMessage } from '@dpfed/proto/request-decoding';
import { unpackTensors } from '@dpfed/proto/tensor-stream';
import { ZeroCopyFraming } from '@dpfed/proto/zero-copy-framing';
import { MAX_MESSAGE_BYTES, type ClientFrameMsg, type CoordinatorFrameMsg, type TaskMsg } from '@dpfed/proto/wire';
import type { FederationOperations, ResultReceiver } from './federation-operations.ts';
import { RpcError, callStatusOf, invalidArgument, type RefusalObserver } from './rpc-error.ts';

type SessionCall = ServerDuplexStream<ClientFrameMsg, CoordinatorFrameMsg | Buffer>;

/** Uploads one institution may have in progress on its stream (each holds a model-sized buffer). */
export const MAX_OPEN_RESULTS = 4;

export function sessionHandler(
  ops: FederationOperations,
  log?: (line: string) => void,
  open?: Set<{ end(): void }>,
  onRefused?: RefusalObserver,
  framing = new ZeroCopyFraming(),
): (call: SessionCall) => void {
  return (call) => {
    /** Uploads in progress by call id. */
    const results = new Map<number, ResultReceiver>();
    /** Uploads refused: their remaining frames are dropped until result_end or cancel (the last 64 kept). */
    const refused = new Set<number>();
    const refuse = (callId: number) => {
      results.delete(callId);
      refused.add(callId);
      if (refused.size > 64) refused.delete(refused.values().next().value!);
    };
    /** What to do when a pending pull or download is cancelled (by the institution or by the stream ending). */
    const cancels = new Map<number, () => void>();
    let closed = false;
    /** The institution this stream speaks for, once one of its requests authenticated (liveness). */
    let institutionId: string | null = null;
    const identified = (id: string) => {
      if (institutionId !== null || closed) return;
      institutionId = id;
      ops.sessionOpened(id);
    };
    let whenClosed!: () => void;
    const closing = new Promise<void>((resolve) => (whenClosed = resolve));

    const close = () => {
      if (closed) return;
      closed = true;
      open?.delete(entry);
      for (const cancel of cancels.values()) cancel();
      cancels.clear();
      results.clear();
      refused.clear();
      whenClosed();
      if (institutionId !== null) ops.sessionClosed(institutionId);
    };
    /** Ends the stream from our side (the institution closed its side, or the coordinator stops). */
    const entry = {
      end: () => {
        close();
        void call.end();
      },
    };
    open?.add(entry);
    call.on('cancelled', close);
    call.on('error', close);
    call.on('end', entry.end);

    const send = async (frame: CoordinatorFrameMsg | Buffer, written?: () => void): Promise<void> => {
      if (closed) return;
      if (!call.write(frame, written)) await Promise.race([new Promise((resolve) => call.once('drain', resolve)), closing]);
    };
    const fail = (callId: number, error: unknown): string => {
      const { code, message, reason, internal } = callStatusOf(error);
      onRefused?.(code, message);
      if (internal) log?.(`internal error: ${(error as Error)?.stack ?? error}`);
      void send({ callId, error: { code, message, reason } });
      return message;
    };
    const answer = (callId: number, fn: () => CoordinatorFrameMsg) => {
      try {
        void send(fn());
      } catch (error) {
        fail(callId, error);
      }
    };

    const pull = (callId: number, request: NonNullable<ClientFrameMsg['pullTask']>) => {
      const listeners: (() => void)[] = [];
      let cancelled = false;
      cancels.set(callId, () => {
        cancelled = true;
        listeners.forEach((cb) => cb());
      });
      Promise.resolve()
        .then(() => {
          const task = ops.pullTask(request, (cb) => listeners.push(cb)); // authenticates first (throws when it fails)
          identified(request.envelope.institutionId);
          return task;
        })
        .then(
          (task) => (cancelled ? undefined : sendTask(callId, request, task)),
          (error) => (cancelled ? undefined : fail(callId, error)),
        )
        .finally(() => cancels.delete(callId));
    };

    /**
     * An EVALUATE task is about a model no institution holds yet (the round's candidate): it goes with the
     * task, packed, when it fits one message, which saves each evaluator a download request and its round
     * trip. Any other task, or a model that cannot be attached, goes as before: the institution downloads it.
     */
    const sendTask = (callId: number, request: NonNullable<ClientFrameMsg['pullTask']>, task: TaskMsg) => {
      if (task.kind === 'EVALUATE' && task.modelId) {
        try {
          const envelope = { ...task.envelope, institutionId: request.envelope.institutionId, session: request.envelope.session };
          const packed = ops.downloadModel({ envelope, chunkBytes: 0, artifact: '' }).packed();
          const frame = packed ? framing.taskWithModel(callId, task, packed.headers, packed.data, MAX_MESSAGE_BYTES) : null;
          if (frame) return send(frame.bytes, frame.release);
        } catch (error) {
          // the model is not available to this institution now: the task goes alone, and its download says why
          if (!(error instanceof RpcError)) log?.(`attaching the model to an EVALUATE task failed: ${(error as Error)?.stack ?? error}`);
        }
      }
      return send({ callId, task });
    };

    const download = async (callId: number, request: NonNullable<ClientFrameMsg['downloadModel']>) => {
      let stopped = false;
      cancels.set(callId, () => (stopped = true));
      try {
        const source = ops.downloadModel(request);
        // a model that fits one message goes in one packed frame (no model_end follows)
        const packed = source.packed();
        const whole = packed ? framing.packedModel(callId, packed.headers, packed.data, MAX_MESSAGE_BYTES) : null;
        if (whole) return void (await send(whole.bytes, whole.release));
        const model = source.chunks();
        if (model.encoded) {
          for (const bytes of model.chunks) {
            if (stopped || closed) return;
            const frame = framing.modelChunk(callId, bytes);
            await send(frame.bytes, frame.release);
          }
        } else {
          for (const chunk of model.chunks) {
            if (stopped || closed) return;
            await send({ callId, modelChunk: chunk });
          }
        }
        await send({ callId, modelEnd: true });
      } catch (error) {
        fail(callId, error);
      } finally {
        cancels.delete(callId);
      }
    };

    const resultChunk = (callId: number, chunk: NonNullable<ClientFrameMsg['result']>) => {
      if (refused.has(callId)) return;
      let receiver = results.get(callId);
      if (!receiver) {
        if (results.size >= MAX_OPEN_RESULTS) {
          refuse(callId);
          return void fail(callId, new RpcError(status.RESOURCE_EXHAUSTED, `result: at most ${MAX_OPEN_RESULTS} results may be open at once on one session`));
        }
        results.set(callId, (receiver = ops.openResult()));
      }
      try {
        receiver.push(chunk);
      } catch (error) {
        refuse(callId);
        receiver.reject(fail(callId, error));
      }
    };

    const wholeResult = (callId: number, batch: NonNullable<ClientFrameMsg['wholeResult']>) => {
      const receiver = ops.openResult();
      try {
        receiver.push({ header: batch.header });
        for (const tensor of unpackTensors(batch.tensors, batch.packedData)) receiver.push({ tensor });
        void send({ callId, ack: receiver.end() });
      } catch (error) {
        receiver.reject(fail(callId, error));
      }
    };

    const resultEnd = (callId: number) => {
      const receiver = results.get(callId);
      results.delete(callId);
      if (refused.delete(callId)) return;
      if (!receiver) return void fail(callId, invalidArgument('header: empty result stream'));
      try {
        void send({ callId, ack: receiver.end() });
      } catch (error) {
        receiver.reject(fail(callId, error));
      }
    };

    call.on('data', (frame: ClientFrameMsg | UndecodableMessage) => {
      if (closed) return;
      // bytes that are not a ClientFrame: the refusal goes under the call id they hold, else under call id 0; the stream goes on
      if (frame instanceof UndecodableMessage) return void fail(frame.callId ?? 0, invalidArgument(frame.describe('frame')));
      const callId = frame.callId;
      switch (frame.body) {
        case 'heartbeat':
          return answer(callId, () => {
            const heartbeat = ops.heartbeat(frame.heartbeat!);
            identified(frame.heartbeat!.envelope.institutionId);
            return { callId, heartbeat };
          });
        case 'pullTask':
          return pull(callId, frame.pullTask!);
        case 'downloadModel':
          return void download(callId, frame.downloadModel!);
        case 'result':
          return resultChunk(callId, frame.result!);
        case 'resultEnd':
          return resultEnd(callId);
        case 'wholeResult':
          return wholeResult(callId, frame.wholeResult!);
        case 'secagg':
          return answer(callId, () => ({ callId, ack: ops.pushSecAgg(frame.secagg!) }));
        case 'decline':
          return answer(callId, () => ({ callId, ack: ops.decline(frame.decline!) }));
        case 'cancel':
          cancels.get(callId)?.();
          cancels.delete(callId);
          results.delete(callId);
          refused.delete(callId);
          return;
        default:
          fail(callId, invalidArgument('body: a frame must carry one request'));
      }
    });
  };
}
