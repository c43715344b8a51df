// Fuzzing the result path of a participant: an institution ("rogue") that is sampled like any other pulls
// its real TRAIN tasks and answers each with a result whose header is right but whose tensors are
// fuzzed (names, shapes, dtypes, offsets, total sizes, tensor indices, lengths, NaN/Inf values, extra and
// missing chunks), alternately as a separate PushResult call and as a whole result on the Session stream.
// That reaches the tensor checks behind the round's participation check, which messages from an
// institution outside the round never reach. Properties as in fuzz-rpc.test.ts: a refusal is a status
// that is not INTERNAL/UNKNOWN, before the deadline, naming the field; the coordinator keeps serving; the
// good institutions' rounds keep committing. Replay with FUZZ_SEED=<seed> FUZZ_PATH=<path>.
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedRegistration } from '@dpfed/client/registration-request';
import { generateIdentity } from '@dpfed/privacy/identity';
import { parameterShapes } from '@dpfed/proto/model-spec';
import type { ChallengeResponse, CoordinatorFrameMsg, Envelope, RegisterResponse, TaskMsg, TensorChunkMsg } from '@dpfed/proto/wire';
import { enrol, testCredentials } from './helpers/federation-fixture.ts';
import { FUZZ_DEADLINE_MS, startFuzzFederation, type FuzzFederation } from './helpers/fuzz-federation.ts';
import { bytes, double, uint32, uint64 } from './helpers/fuzz-messages.ts';
import { RawFederationClient, decodeResponse, encodeRequest, outcomeProblem, type RawOutcome } from './helpers/raw-grpc-client.ts';

const RUNS = Number(process.env.FUZZ_PARTICIPANT_RUNS ?? 300);

/** Changes to one tensor chunk of an otherwise right update: none, or one or two fields. */
const override = fc
  .array(
    fc.oneof(
      fc.record({ name: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('w0', 'b0', 'dense_0/kernel')) }),
      fc.record({ shape: fc.array(uint32, { maxLength: 4 }) }),
      fc.record({ dtype: fc.oneof(fc.constantFrom('FLOAT32', 'INT32', 'UINT32', 'FLOAT64', 'BYTES', 'DTYPE_UNSPECIFIED'), fc.integer({ min: 6, max: 30 })) }),
      fc.record({ totalBytes: uint64 }),
      fc.record({ offset: uint64 }),
      fc.record({ data: bytes }),
      fc.record({ values: fc.array(double, { minLength: 1, maxLength: 4 }) }),
      fc.record({ values: fc.array(double, { minLength: 1, maxLength: 4 }) }),
      fc.record({ tensorIndex: uint32 }),
      fc.record({ tensorCount: uint32 }),
    ),
    { maxLength: 2 },
  )
  .map((changes) => Object.assign({}, ...changes) as Partial<TensorChunkMsg> & { values?: number[] });

/** A fuzzed update: per chunk, which tensor it starts from and what is changed; some chunks split, some repeated. */
const update = fc.record({
  chunks: fc.oneof(
    fc.array(fc.record({ tensor: fc.nat({ max: 2 }), override, split: fc.boolean() }), { maxLength: 4 }),
    // both tensors in order, each perhaps changed
    fc.tuple(override, override, fc.boolean()).map(([a, b, split]) => [
      { tensor: 0, override: a, split },
      { tensor: 1, override: b, split },
    ]),
  ),
  whole: fc.boolean(),
});

describe('fuzzing the results of an institution that takes part in the round', () => {
  let f: FuzzFederation;
  let rogue: RawFederationClient;
  let envelope: Envelope;

  beforeAll(async () => {
    f = await startFuzzFederation('fuzz-participant');
    const identity = generateIdentity();
    enrol(f.coordinator, 'rogue', identity.publicKey);
    rogue = new RawFederationClient(`127.0.0.1:${f.coordinator.port}`, testCredentials('rogue'));
    const c = await rogue.unary('Challenge', encodeRequest('Challenge', { institutionId: 'rogue' }), FUZZ_DEADLINE_MS);
    const challenge = decodeResponse<ChallengeResponse>('Challenge', c.responses[0]);
    const r = await rogue.unary('Register', encodeRequest('Register', signedRegistration(challenge, { institutionId: 'rogue', identity, budget: null, declaredExamples: 10 })), FUZZ_DEADLINE_MS);
    expect(grpc.status[r.code], r.details).toBe('OK');
    envelope = { runId: f.coordinator.runId, round: 0, modelVersion: 0, institutionId: 'rogue', session: decodeResponse<RegisterResponse>('Register', r.responses[0]).session };
  }, 60_000);

  afterAll(async () => {
    rogue?.close();
    await f?.close();
  });

  /** The rogue's next TRAIN task (it answers evaluations with a decline, so they do not wait for it). */
  async function nextTrainTask(): Promise<TaskMsg> {
    for (const started = Date.now(); Date.now() - started < 30_000; ) {
      const out = await rogue.unary('PullTask', encodeRequest('PullTask', { envelope, waitMs: 1_000 }), FUZZ_DEADLINE_MS);
      if (out.code !== grpc.status.OK) throw new Error(`PullTask refused: ${grpc.status[out.code]} ${out.details}`);
      const task = decodeResponse<TaskMsg>('PullTask', out.responses[0]);
      if (task.kind === 'TRAIN') return task;
      if (task.kind === 'EVALUATE')
        await rogue.unary('Decline', encodeRequest('Decline', { envelope: { ...envelope, ...task.envelope, institutionId: 'rogue', session: envelope.session }, reason: 'fuzzing' }), FUZZ_DEADLINE_MS);
      if (task.kind === 'DONE') throw new Error(`the rogue got DONE: ${task.message}`);
    }
    throw new Error('no TRAIN task for the rogue in 30 s');
  }

  function chunksOf(u: typeof update extends fc.Arbitrary<infer T> ? T : never, taskEnvelope: Envelope): TensorChunkMsg[] {
    const shapes = parameterShapes(f.config.modelSpec);
    return u.chunks.flatMap(({ tensor, override: o, split }) => {
      const s = shapes[tensor % shapes.length];
      const length = s.shape.reduce((a, b) => a * b, 1);
      let data: Uint8Array = new Uint8Array(new Float32Array(length).fill(0.01).buffer);
      if (o.values) {
        const floats = new Float32Array(data.buffer);
        o.values.forEach((v, i) => (floats[i % length] = v));
      }
      if (o.data) data = o.data;
      const base: TensorChunkMsg = {
        envelope: taskEnvelope,
        name: s.name,
        shape: s.shape,
        dtype: 'FLOAT32',
        totalBytes: data.length,
        offset: 0,
        data,
        tensorIndex: tensor,
        tensorCount: shapes.length,
      };
      const { values: _values, ...fields } = o;
      const chunk = { ...base, ...fields, data } as TensorChunkMsg;
      if (!split || data.length < 2) return [chunk];
      const half = Math.floor(data.length / 2);
      return [
        { ...chunk, data: data.subarray(0, half) },
        { ...chunk, offset: Number(chunk.offset) + half, data: data.subarray(half) },
      ];
    });
  }

  async function send(u: typeof update extends fc.Arbitrary<infer T> ? T : never, task: TaskMsg): Promise<RawOutcome> {
    const taskEnvelope = { ...task.envelope, institutionId: 'rogue', session: envelope.session };
    const header = { envelope: taskEnvelope, kind: 'TRAIN_RESULT', numExamples: 10, metrics: { loss: 0.5 }, tensorCount: parameterShapes(f.config.modelSpec).length };
    const chunks = chunksOf(u, taskEnvelope);
    if (!u.whole) return rogue.clientStream('PushResult', [encodeRequest('PushResult', { header }), ...chunks.map((tensor) => encodeRequest('PushResult', { tensor }))], FUZZ_DEADLINE_MS);
    const call = rogue.session(FUZZ_DEADLINE_MS);
    const answer = new Promise<RawOutcome>((resolve) => {
      call.on('data', (b: Buffer) => {
        const frame = decodeResponse<CoordinatorFrameMsg>('Session', b);
        resolve(frame.body === 'error' ? { code: frame.error!.code, details: frame.error!.message, responses: [] } : { code: grpc.status.OK, details: '', responses: [b] });
      });
      call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details, responses: [] }));
    });
    call.write(encodeRequest('Session', { callId: 1, wholeResult: { header, tensors: chunks } }));
    const out = await answer;
    call.end();
    return out;
  }

  it(`refuses ${RUNS} fuzzed updates of a participant with named refusals, and the rounds go on`, async () => {
    const committedBefore = f.rounds.rounds.length;
    const seen = new Map<string, number>();
    const result = await fc.check(
      fc.asyncProperty(update, async (u) => {
        const task = await nextTrainTask();
        const out = await send(u, task);
        const key = `${grpc.status[out.code]} ${out.details.split(':')[0]}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        const problems = [outcomeProblem(out), await f.stillServing(), f.uncaught.length ? `uncaughtException: ${String(f.uncaught[0])}` : null].filter(Boolean);
        if (problems.length) throw new Error(problems.join('\n'));
      }),
      {
        numRuns: RUNS,
        seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined,
        path: process.env.FUZZ_PATH,
        endOnFailure: Boolean(process.env.FUZZ_NO_SHRINK),
        interruptAfterTimeLimit: 90_000,
      },
    );
    if (result.failed) {
      throw new Error(
        `fuzz failure (replay: FUZZ_SEED=${result.seed} FUZZ_PATH=${result.counterexamplePath}):\n${String(result.errorInstance)}\ncounterexample: ${fc.stringify(result.counterexample).slice(0, 2_000)}`,
      );
    }
    if (process.env.FUZZ_VERBOSE)
      console.log(
        [...seen]
          .sort()
          .map(([k, n]) => `${n}\t${k}`)
          .join('\n'),
      );
    expect(result.numRuns).toBe(RUNS);
    // the fuzzed updates reached the tensor checks
    expect(
      [...seen.keys()].some((k) => k.includes(' tensor.')),
      [...seen.keys()].join(', '),
    ).toBe(true);
    expect(f.rounds.rounds.length - committedBefore).toBeGreaterThanOrEqual(Math.min(RUNS, 3));
    expect(f.rounds.failures).toEqual([]);
    expect(f.uncaught).toEqual([]);
  }, 180_000);
});
