// Fuzzing every separate RPC of a real coordinator (mutual TLS on 127.0.0.1): Challenge, Register,
// Heartbeat, PullTask, DownloadModel, PushResult and PushSecAgg, Decline, with arbitrary, mutated, out of
// order and non-protobuf messages (test/helpers/fuzz-messages.ts), sent in concurrent batches by a raw
// client (identity serialisers). Properties: every refusal is a gRPC status that is neither INTERNAL nor
// UNKNOWN, arrives before its deadline and names the field at fault; after every batch the coordinator
// still answers a valid Heartbeat and Challenge; no uncaught exception; two good institutions keep
// completing rounds beside the fuzzing. Replay a failure with FUZZ_SEED=<seed> (and FUZZ_PATH=<path>).
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FUZZ_DEADLINE_MS, startFuzzFederation, type FuzzFederation } from './helpers/fuzz-federation.ts';
import {
  challengeRequest,
  declineRequest,
  flipBit,
  heartbeatRequest,
  modelRequest,
  mutate,
  mutation,
  pullTaskRequest,
  registerRequest,
  resolve,
  resultChunk,
  resultHeader,
  secAggMessage,
  tensorChunk,
  type Mutation,
  type SignedRegister,
} from './helpers/fuzz-messages.ts';
import { encodeRequest, outcomeProblem, type RawOutcome, type UnaryMethod } from './helpers/raw-grpc-client.ts';

const DEADLINE_MS = FUZZ_DEADLINE_MS;
/** Cases per batch (sent concurrently) and batches: 10,000 cases by default. */
const BATCH = Number(process.env.FUZZ_BATCH ?? 50);
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);

type Case =
  | { method: UnaryMethod; message: unknown; mutation: Mutation }
  | { method: 'DownloadModel'; message: unknown; mutation: Mutation }
  | { method: 'PushResult'; frames: readonly { message: unknown; mutation: Mutation }[] };

const unary = (method: UnaryMethod, message: fc.Arbitrary<unknown>): fc.Arbitrary<Case> => fc.record({ method: fc.constant(method), message, mutation }) as fc.Arbitrary<Case>;

/** A PullTask whose bytes are not mutated: a flipped wait_ms could turn a valid poll into a long one. */
const pullTask = fc.record({ method: fc.constant('PullTask' as const), message: pullTaskRequest, mutation: fc.constant({ kind: 'none' } as Mutation) });

const frame = (message: fc.Arbitrary<unknown>) => fc.record({ message, mutation });
/** PushResult streams: arbitrary chunk lists, and the out-of-order ones (tensor first, two headers, no chunks). */
const pushResult: fc.Arbitrary<Case> = fc
  .oneof(
    fc.array(frame(resultChunk), { maxLength: 6 }),
    fc.tuple(frame(tensorChunk.map((tensor) => ({ tensor }))), frame(resultHeader.map((header) => ({ header })))),
    fc.tuple(frame(resultHeader.map((header) => ({ header }))), frame(resultHeader.map((header) => ({ header })))),
    fc.tuple(frame(resultHeader.map((header) => ({ header }))), fc.array(frame(tensorChunk.map((tensor) => ({ tensor }))), { maxLength: 4 })).map(([h, t]) => [h, ...t]),
    fc.constant([] as { message: unknown; mutation: Mutation }[]),
  )
  .map((frames) => ({ method: 'PushResult' as const, frames }));

const fuzzCase: fc.Arbitrary<Case> = fc.oneof(
  unary('Challenge', challengeRequest),
  unary('Register', registerRequest),
  unary('Heartbeat', heartbeatRequest),
  pullTask,
  fc.record({ method: fc.constant('DownloadModel' as const), message: modelRequest, mutation }),
  pushResult,
  unary('PushSecAgg', secAggMessage),
  unary('Decline', declineRequest),
);

describe('fuzzing every RPC of a running coordinator', () => {
  let f: FuzzFederation;

  beforeAll(async () => {
    f = await startFuzzFederation('fuzz-rpc');
  }, 120_000);

  afterAll(async () => {
    await f?.close();
  });

  /** Sends one case against the coordinator's current round. */
  async function send(c: Case): Promise<RawOutcome> {
    const { raw, ctx } = f;
    f.refresh();
    if (c.method === 'PushResult') {
      const frames = c.frames.map((frame) => mutate(encodeRequest('PushResult', resolve(ctx, frame.message)), frame.mutation));
      return raw.clientStream('PushResult', frames, DEADLINE_MS);
    }
    if (c.method === 'DownloadModel') return raw.serverStream('DownloadModel', mutate(encodeRequest('DownloadModel', resolve(ctx, c.message)), c.mutation), DEADLINE_MS);
    const signed = c.message as Partial<SignedRegister>;
    if (c.method === 'Register' && signed.$signed) {
      const request = f.signedRegisterRequest(await f.challenge());
      if (signed.$signed === 'signature') request.signature = flipBit(request.signature, signed.bit!);
      if (signed.$signed === 'nonce') request.nonce = flipBit(request.nonce, signed.bit!);
      const bytes = mutate(encodeRequest('Register', request), c.mutation);
      const out = await raw.unary('Register', bytes, DEADLINE_MS);
      // a flip in a field the signature does not cover (client_version) registers again: follow the new session
      if (out.code === grpc.status.OK) f.registered(out.responses[0]);
      return out;
    }
    return raw.unary(c.method, mutate(encodeRequest(c.method, resolve(ctx, c.message)), c.mutation), DEADLINE_MS);
  }

  // The minimal counterexamples the fuzzer found, kept as fixed cases.
  it('refuses a request that is not valid protobuf with INVALID_ARGUMENT naming the request, not INTERNAL', async () => {
    // a valid HeartbeatRequest followed by the bytes 18 65 (field 2, length 65, with no 65 bytes behind it)
    const { raw, ctx } = f;
    const bytes = Buffer.concat([encodeRequest('Heartbeat', { envelope: resolve(ctx, { $valid: 'none' }) }), Buffer.from([18, 65])]);
    const out = await raw.unary('Heartbeat', bytes, DEADLINE_MS);
    expect(grpc.status[out.code]).toBe('INVALID_ARGUMENT');
    expect(out.details).toMatch(/^request: \d+ bytes that are not a valid HeartbeatRequest protobuf message/);
    const download = await raw.serverStream('DownloadModel', Buffer.from([0xff, 0xff, 0xff]), DEADLINE_MS);
    expect([grpc.status[download.code], download.details]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/^request: 3 bytes that are not a valid ModelRequest/)]);
    const push = await raw.clientStream('PushResult', [Buffer.from([0x0a, 0x05, 0x01])], DEADLINE_MS);
    expect([grpc.status[push.code], push.details]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/^result: 3 bytes that are not a valid ResultChunk/)]);
    expect(await f.stillServing()).toBeNull();
  });

  it('answers a request naming a 100,000-character institution id with a bounded refusal, not a trailer no client accepts', async () => {
    const { raw, ctx } = f;
    const envelope = { ...resolve(ctx, { $valid: 'none' }), institutionId: 'x'.repeat(100_000) };
    const out = await raw.unary('PushSecAgg', encodeRequest('PushSecAgg', { envelope, collection: 'update' }), DEADLINE_MS);
    expect(grpc.status[out.code]).toBe('INVALID_ARGUMENT');
    expect(out.details).toMatch(/^envelope\.institution_id: unknown institution "x{64}… \(100000 characters\)" \(register first\)$/);
    expect(await f.stillServing()).toBeNull();
  });

  it('refuses a download in chunks smaller than one element with INVALID_ARGUMENT naming chunk_bytes, not INTERNAL', async () => {
    const { raw, ctx } = f;
    f.refresh();
    const request = (chunkBytes: number) => encodeRequest('DownloadModel', { envelope: resolve(ctx, { $valid: 'none' }), chunkBytes, artifact: '' });
    const out = await raw.serverStream('DownloadModel', request(1), DEADLINE_MS);
    expect([grpc.status[out.code], out.details]).toEqual(['INVALID_ARGUMENT', 'chunk_bytes: at least 8 (or 0 for the default), got 1']);
    // the smallest allowed chunk still downloads the model. The good institutions keep committing rounds
    // beside this test, so a version that moves on between the refresh and the download is asked again.
    let ok = await raw.serverStream('DownloadModel', request(8), DEADLINE_MS);
    for (let attempt = 0; attempt < 5 && ok.code === grpc.status.FAILED_PRECONDITION && /is not available/.test(ok.details); attempt++) {
      f.refresh();
      ok = await raw.serverStream('DownloadModel', request(8), DEADLINE_MS);
    }
    expect(grpc.status[ok.code], ok.details).toBe('OK');
    expect(ok.responses.length).toBeGreaterThan(1);
  });

  it(`answers ${BATCH * RUNS} fuzzed calls with named refusals, keeps serving, and the good institutions keep completing rounds`, async () => {
    const committedBefore = f.rounds.rounds.length;
    const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
    const counts = new Map<string, number>();
    /** Outcomes by method, status and the field named: the fuzzing reaches past the first checks. */
    const statuses = new Map<string, number>();
    const result = await fc.check(
      fc.asyncProperty(fc.array(fuzzCase, { minLength: BATCH, maxLength: BATCH }), async (cases) => {
        const outcomes = await Promise.all(cases.map(send));
        for (const c of cases) counts.set(c.method, (counts.get(c.method) ?? 0) + 1);
        for (const [k, o] of outcomes.entries()) {
          const key = `${cases[k].method} ${grpc.status[o.code]} ${o.details.split(':')[0]}`;
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
        }
        const problems = outcomes.flatMap((o, k) => {
          const problem = outcomeProblem(o);
          return problem ? [`${cases[k].method}: ${problem}\n  case: ${fc.stringify(cases[k]).slice(0, 600)}`] : [];
        });
        const serving = await f.stillServing();
        if (serving) problems.push(serving);
        if (f.uncaught.length) problems.push(`uncaughtException: ${String(f.uncaught[0])}`);
        if (problems.length) throw new Error(problems.slice(0, 5).join('\n'));
      }),
      { numRuns: RUNS, seed, path: process.env.FUZZ_PATH, endOnFailure: Boolean(process.env.FUZZ_NO_SHRINK), interruptAfterTimeLimit: 400_000 },
    );
    if (result.failed) {
      throw new Error(`fuzz failure (replay: FUZZ_SEED=${result.seed} FUZZ_PATH=${result.counterexamplePath}):\n${String(result.errorInstance)}\n(${result.numShrinks} shrinks)`);
    }
    if (process.env.FUZZ_VERBOSE)
      console.log(
        [...statuses]
          .sort()
          .map(([k, n]) => `${n}\t${k}`)
          .join('\n'),
      );
    expect(result.numRuns).toBe(RUNS);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(BATCH * RUNS);
    for (const method of ['Challenge', 'Register', 'Heartbeat', 'PullTask', 'DownloadModel', 'PushResult', 'PushSecAgg', 'Decline']) expect(counts.get(method), method).toBeGreaterThan(0);
    // liveness: the good institutions completed rounds while the fuzzing went on, and none failed
    expect(f.rounds.rounds.length - committedBefore, 'rounds committed during the fuzzing').toBeGreaterThanOrEqual(3);
    expect(f.rounds.failures).toEqual([]);
    expect(f.uncaught).toEqual([]);
  }, 480_000);
});
