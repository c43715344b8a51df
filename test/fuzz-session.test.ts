// Fuzzing the Session stream of a real coordinator (mutual TLS on 127.0.0.1): every run opens a stream as
// the fuzzing institution and sends a batch of calls as ClientFrames (test/helpers/fuzz-messages.ts):
// arbitrary and mutated requests of every kind, result uploads out of order (a tensor chunk before its
// header, a second header, an end before any data, chunks never ended or cancelled), whole results, and
// frames that are not protobuf at all. Properties: every error frame carries a gRPC code that is neither
// INTERNAL nor UNKNOWN and a message naming the field at fault; every request sent intact is answered under
// its call id before the deadline; the stream itself survives (a valid heartbeat on it is answered, and it
// closes with OK); the coordinator still answers separate Heartbeat and Challenge calls; no uncaught
// exception; the good institutions keep completing rounds. Replay with FUZZ_SEED=<seed> FUZZ_PATH=<path>.
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoordinatorFrameMsg } from '@dpfed/proto/wire';
import { FUZZ_DEADLINE_MS, startFuzzFederation, type FuzzFederation } from './helpers/fuzz-federation.ts';
import {
  bytes,
  declineRequest,
  heartbeatRequest,
  modelRequest,
  mutate,
  mutation,
  pullTaskRequest,
  resolve,
  resultChunk,
  resultHeader,
  secAggMessage,
  tensorChunk,
  type Mutation,
} from './helpers/fuzz-messages.ts';
import { FIELD_PREFIX, decodeResponse, encodeRequest } from './helpers/raw-grpc-client.ts';

/** Calls per stream and streams: 3,000 calls (some of several frames) by default. */
const BATCH = Number(process.env.FUZZ_SESSION_BATCH ?? 50);
const RUNS = Number(process.env.FUZZ_SESSION_RUNS ?? 60);
/** The call id of the valid heartbeat that closes every batch. */
const PROBE = 0xfffffff0;

type Body = Record<string, unknown>;
type Frame = { body: Body; mutation: Mutation };
/** One call on the stream: its frames (all under the call's id) and whether an intact call must be answered. */
type SessionCase = { frames: Frame[]; answered: boolean };

const intact = (body: fc.Arbitrary<Body>) => fc.record({ body, mutation });
const one = (body: fc.Arbitrary<Body>): fc.Arbitrary<SessionCase> => intact(body).map((frame) => ({ frames: [frame], answered: true }));
const header = resultHeader.map((h) => ({ result: { header: h } }));
const tensor = tensorChunk.map((t) => ({ result: { tensor: t } }));
const end = fc.constant({ resultEnd: true });

const sessionCase: fc.Arbitrary<SessionCase> = fc.oneof(
  one(heartbeatRequest.map((heartbeat) => ({ heartbeat }))),
  one(pullTaskRequest.map((pullTask) => ({ pullTask }))),
  one(modelRequest.map((downloadModel) => ({ downloadModel }))),
  one(secAggMessage.map((secagg) => ({ secagg }))),
  one(declineRequest.map((decline) => ({ decline }))),
  one(fc.record({ header: resultHeader, tensors: fc.array(tensorChunk, { maxLength: 3 }), packedData: bytes, padding: bytes }, { requiredKeys: [] }).map((wholeResult) => ({ wholeResult }))),
  // a frame with no request in it, and an end before any data: both answered with an error
  one(fc.constant({})),
  one(end),
  // a cancel of nothing: no answer
  intact(fc.constant({ cancel: true })).map((frame) => ({ frames: [frame], answered: false })),
  // uploads in chunks: arbitrary chunk lists, a tensor before its header, a second header; ended (answered) or not
  fc
    .tuple(
      fc.oneof(
        fc.array(intact(resultChunk.map((result) => ({ result }))), { maxLength: 5 }),
        fc.tuple(intact(tensor), intact(header)),
        fc.tuple(intact(header), intact(header)),
        fc.tuple(intact(header), fc.array(intact(tensor), { maxLength: 3 })).map(([h, t]) => [h, ...t]),
      ),
      fc.constantFrom('end', 'end', 'cancel', 'open'),
    )
    .map(([chunks, close]) => ({
      frames: close === 'open' ? chunks : [...chunks, { body: close === 'end' ? { resultEnd: true } : { cancel: true }, mutation: { kind: 'none' } as Mutation }],
      answered: close === 'end',
    })),
);

describe('fuzzing the Session stream of a running coordinator', () => {
  let f: FuzzFederation;

  beforeAll(async () => {
    f = await startFuzzFederation('fuzz-session');
  }, 120_000);

  afterAll(async () => {
    await f?.close();
  });

  /** Opens a stream, sends the frames, then the probe; returns every answer frame and how the stream ended. */
  async function runStream(frames: Buffer[], expected: Set<number>): Promise<{ answers: CoordinatorFrameMsg[]; status: grpc.StatusObject | null; problems: string[] }> {
    const call = f.raw.session(FUZZ_DEADLINE_MS * 2);
    const answers: CoordinatorFrameMsg[] = [];
    const problems: string[] = [];
    const waiting = new Set(expected);
    let status: grpc.StatusObject | null = null;
    const done = new Promise<void>((resolveDone) => {
      const timer = setTimeout(() => {
        problems.push(`no answer before the deadline (hang) for call ids ${[...waiting].slice(0, 8).join(', ')}`);
        resolveDone();
      }, FUZZ_DEADLINE_MS);
      const check = () => {
        if (waiting.size === 0) {
          clearTimeout(timer);
          resolveDone();
        }
      };
      call.on('data', (b: Buffer) => {
        const frame = decodeResponse<CoordinatorFrameMsg>('Session', b);
        answers.push(frame);
        waiting.delete(frame.callId);
        check();
      });
      call.on('error', (e: grpc.ServiceError) => {
        status = { code: e.code, details: e.details, metadata: e.metadata };
        problems.push(`the stream failed: ${grpc.status[e.code]} ${e.details}`);
        clearTimeout(timer);
        resolveDone();
      });
      check();
    });
    for (const frame of frames) call.write(frame);
    f.refresh();
    call.write(encodeRequest('Session', { callId: PROBE, heartbeat: { envelope: resolve(f.ctx, { $valid: 'none' }) } }));
    await done;
    const closed = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    call.end();
    status ??= await Promise.race([closed, new Promise<null>((r) => setTimeout(() => r(null), FUZZ_DEADLINE_MS))]);
    return { answers, status, problems };
  }

  /** Sends `frames` on a fresh stream and returns the answers (the probe heartbeat's among them). */
  async function answersTo(...frames: Buffer[]): Promise<CoordinatorFrameMsg[]> {
    const { answers, problems } = await runStream(frames, new Set([PROBE]));
    expect(problems).toEqual([]);
    expect(answers.find((a) => a.callId === PROBE)?.body).toBe('heartbeat');
    return answers.filter((a) => a.callId !== PROBE);
  }

  const frame = (body: Body) => encodeRequest('Session', body);

  // The minimal counterexamples the fuzzer found, kept as fixed cases.
  it('refuses a frame that is not protobuf under call id 0, naming the frame, and the stream goes on', async () => {
    const answers = await answersTo(Buffer.from([0xff, 0xff]));
    expect(answers.map((a) => [a.callId, a.body, grpc.status[a.error?.code ?? 0], a.error?.message])).toEqual([
      [0, 'error', 'INVALID_ARGUMENT', expect.stringMatching(/^frame: 2 bytes that are not a valid ClientFrame protobuf message/)],
    ]);
  });

  it('refuses a frame whose call id decodes but whose request does not (a model version past 2^53) under that call id, naming the frame', async () => {
    const answers = await answersTo(frame({ callId: 48, heartbeat: { envelope: { runId: 'r', modelVersion: 2 ** 63 } } }));
    expect(answers.map((a) => [a.callId, grpc.status[a.error?.code ?? 0], a.error?.message])).toEqual([
      [48, 'INVALID_ARGUMENT', expect.stringMatching(/^frame: \d+ bytes that are not a valid ClientFrame protobuf message \(.*MAX_SAFE_INTEGER/)],
    ]);
  });

  it('refuses a pull without an envelope with INVALID_ARGUMENT naming the envelope (not INTERNAL, no unhandled rejection)', async () => {
    const answers = await answersTo(frame({ callId: 17, pullTask: { envelope: null, waitMs: 30 } }));
    expect(answers.map((a) => [a.callId, grpc.status[a.error?.code ?? 0], a.error?.message])).toEqual([[17, 'INVALID_ARGUMENT', 'envelope: missing']]);
    expect(f.uncaught).toEqual([]);
  });

  it('refuses a whole training result from an institution outside the round with FAILED_PRECONDITION naming envelope.institution_id', async () => {
    // only a round in its training phase says so; the good institutions' rounds pass through it often
    let message = '';
    for (const started = Date.now(); Date.now() - started < 20_000; ) {
      f.refresh();
      const header = { envelope: resolve(f.ctx, { $valid: 'none' }), kind: 'TRAIN_RESULT', numExamples: 1, tensorCount: 2 };
      const [answer] = await answersTo(frame({ callId: 1, wholeResult: { header, tensors: [] } }));
      message = answer.error?.message ?? '';
      expect(grpc.status[answer.error?.code ?? 0], message).toBe('FAILED_PRECONDITION');
      if (!message.includes('is not collecting')) break;
    }
    expect(message).toBe('envelope.institution_id: institution "attacker" is not a participant of this training phase');
  });

  it(`answers ${BATCH * RUNS} fuzzed calls on Session streams with named refusals, and the stream and the coordinator keep serving`, async () => {
    const committedBefore = f.rounds.rounds.length;
    const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
    let calls = 0;
    let errors = 0;
    const kinds = new Map<string, number>();
    const result = await fc.check(
      fc.asyncProperty(fc.array(sessionCase, { minLength: BATCH, maxLength: BATCH }), async (cases) => {
        f.refresh();
        const frames: Buffer[] = [];
        const expected = new Set<number>([PROBE]);
        cases.forEach((c, k) => {
          const callId = k + 1;
          const mutated = c.frames.some((frame) => frame.mutation.kind !== 'none');
          if (c.answered && !mutated) expected.add(callId);
          for (const frame of c.frames) frames.push(mutate(encodeRequest('Session', { callId, ...resolve(f.ctx, frame.body) }), frame.mutation));
          for (const frame of c.frames) for (const key of Object.keys(frame.body)) kinds.set(key, (kinds.get(key) ?? 0) + 1);
        });
        calls += cases.length;
        const { answers, status, problems } = await runStream(frames, expected);
        for (const a of answers) {
          if (a.body !== 'error') continue;
          errors++;
          const { code, message } = a.error!;
          const c = cases[a.callId - 1];
          const sent = c ? `\n  case: ${fc.stringify(c).slice(0, 600)}` : '';
          if (code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN || code === grpc.status.OK) problems.push(`call ${a.callId}: ${grpc.status[code] ?? code}: ${message}${sent}`);
          else if (!FIELD_PREFIX.test(message)) problems.push(`call ${a.callId}: ${grpc.status[code]} without a field prefix: "${message}"${sent}`);
        }
        const probe = answers.find((a) => a.callId === PROBE);
        if (probe && probe.body !== 'heartbeat') problems.push(`the probe heartbeat got ${probe.body}: ${JSON.stringify(probe.error)}`);
        if (status && status.code !== grpc.status.OK) problems.push(`the stream ended with ${grpc.status[status.code]}: ${status.details}`);
        if (!status) problems.push('the stream did not close after the client ended it');
        const serving = await f.stillServing();
        if (serving) problems.push(serving);
        if (f.uncaught.length) problems.push(`uncaughtException: ${String(f.uncaught[0])}`);
        if (problems.length) throw new Error([...new Set(problems)].slice(0, 5).join('\n'));
      }),
      { numRuns: RUNS, seed, path: process.env.FUZZ_PATH, endOnFailure: Boolean(process.env.FUZZ_NO_SHRINK), interruptAfterTimeLimit: 400_000 },
    );
    if (result.failed) {
      throw new Error(`fuzz failure (replay: FUZZ_SEED=${result.seed} FUZZ_PATH=${result.counterexamplePath}):\n${String(result.errorInstance)}\n(${result.numShrinks} shrinks)`);
    }
    if (process.env.FUZZ_VERBOSE) console.log({ calls, errors, kinds });
    expect(result.numRuns).toBe(RUNS);
    expect(calls).toBeGreaterThanOrEqual(BATCH * RUNS);
    expect(errors, 'refusals seen (the fuzzing is not vacuous)').toBeGreaterThan(calls / 4);
    // liveness: the good institutions completed rounds while the fuzzing went on, and none failed
    expect(f.rounds.rounds.length - committedBefore, 'rounds committed during the fuzzing').toBeGreaterThanOrEqual(3);
    expect(f.rounds.failures).toEqual([]);
    expect(f.uncaught).toEqual([]);
  }, 480_000);
});
