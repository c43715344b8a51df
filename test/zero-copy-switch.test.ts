// The zero-copy switch (proto/zero-copy-framing.ts): with DPFED_ZERO_COPY=0 (or the zeroCopy option) every
// Session frame that carries tensors goes through the generated encoder instead of the hand framing. Both
// ways the frames decode to the same messages, and the same seeded federation commits bit-identical
// models and AUCs.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import type { RoundSummary } from '@dpfed/coordinator/round-machine';
import { ClientFrame, CoordinatorFrame } from '@dpfed/proto/generated/dpfed/v1/federation';
import { taskConfigMessage } from '@dpfed/proto/task-config-message';
import { chunkTensors, packTensors } from '@dpfed/proto/tensor-stream';
import { serializeTensorChunk, type TaskMsg } from '@dpfed/proto/wire';
import { ZERO_COPY_ENV, ZeroCopyFraming, zeroCopyEnabled } from '@dpfed/proto/zero-copy-framing';
import {
  ShiftLearner,
  bankSlices,
  cleanUp,
  makeInstitution,
  recordRounds,
  runConfig,
  start,
  startTestCoordinator,
  tempDir,
  tfjsInstitution,
  within,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

/** Runs `body` with DPFED_ZERO_COPY set to `value` (undefined: unset), restoring it afterwards. */
async function withZeroCopyEnv<T>(value: string | undefined, body: () => Promise<T> | T): Promise<T> {
  const before = process.env[ZERO_COPY_ENV];
  if (value === undefined) delete process.env[ZERO_COPY_ENV];
  else process.env[ZERO_COPY_ENV] = value;
  try {
    return await body();
  } finally {
    if (before === undefined) delete process.env[ZERO_COPY_ENV];
    else process.env[ZERO_COPY_ENV] = before;
  }
}

/** The decoded frame without the padding field (which only the zero-copy frames carry). */
function withoutPadding(frame: Record<string, unknown>): unknown {
  return JSON.parse(JSON.stringify(frame, (key, value) => (key === 'padding' ? undefined : value instanceof Uint8Array ? [...value] : value)));
}

describe('the switch', () => {
  it('reads DPFED_ZERO_COPY (absent: on), an explicit option wins, and anything but 0 or 1 is refused naming the variable', async () => {
    expect(await withZeroCopyEnv(undefined, () => zeroCopyEnabled())).toBe(true);
    expect(await withZeroCopyEnv('0', () => new ZeroCopyFraming().enabled)).toBe(false);
    expect(await withZeroCopyEnv('1', () => zeroCopyEnabled())).toBe(true);
    expect(await withZeroCopyEnv('0', () => zeroCopyEnabled(true))).toBe(true);
    expect(await withZeroCopyEnv(undefined, () => zeroCopyEnabled(false))).toBe(false);
    await withZeroCopyEnv('yes', () => expect(() => zeroCopyEnabled()).toThrow(/^DPFED_ZERO_COPY: expected 0 or 1, got "yes"/));
  });

  it("every framed message decodes to the same message both ways; off, the bytes are the generated encoder's own", () => {
    const on = new ZeroCopyFraming({ zeroCopy: true });
    const off = new ZeroCopyFraming({ zeroCopy: false });
    const envelope = { runId: 'run-1', round: 3, modelVersion: 2, institutionId: 'bank-1', session: Buffer.alloc(16, 7) };
    const flat = Float32Array.from({ length: 10 }, (_, i) => i / 3 - 1);
    const tensors = [
      { name: 'dense_0/kernel', shape: [4, 2], dtype: 'FLOAT32' as const, data: flat.subarray(0, 8) },
      { name: 'dense_0/bias', shape: [2], dtype: 'FLOAT32' as const, data: flat.subarray(8) },
    ];
    const { headers, packed } = packTensors(tensors);
    const encodedHeaders = headers.map((h) => serializeTensorChunk(h));
    const [chunk] = [...chunkTensors(tensors, 1 << 20, envelope)];
    const header = { envelope, kind: 'TRAIN_RESULT' as const, numExamples: 0, metrics: { loss: 0.5 }, tensorCount: 2, masked: false, encrypted: false };
    const config = taskConfigMessage({ ...runConfig([]).task, strategy: 'fedavg', proximalMu: 0, seed: 's' });
    const task: TaskMsg = { envelope, kind: 'EVALUATE', config, retryAfterMs: 0, message: '', modelId: 'm1' };
    const pairs: [string, typeof CoordinatorFrame | typeof ClientFrame, (f: ZeroCopyFraming) => { bytes: Buffer; release?: () => void } | null][] = [
      ['modelChunk', CoordinatorFrame, (f) => f.modelChunk(7, serializeTensorChunk(chunk))],
      ['packedModel', CoordinatorFrame, (f) => f.packedModel(8, encodedHeaders, packed, 1 << 20)],
      ['taskWithModel', CoordinatorFrame, (f) => f.taskWithModel(9, task, encodedHeaders, packed, 1 << 20)],
      ['packedResult', ClientFrame, (f) => f.packedResult(10, header, headers, packed, 1 << 20)],
      ['resultTensor', ClientFrame, (f) => f.resultTensor(11, chunk)],
    ];
    for (const [name, codec, frame] of pairs) {
      const a = frame(on)!;
      const b = frame(off)!;
      expect(b.release, name).toBeUndefined();
      const decoded = codec.decode(b.bytes);
      expect(withoutPadding(codec.decode(a.bytes) as never), name).toEqual(withoutPadding(decoded as never));
      expect(b.bytes.equals(Buffer.from(codec.encode(decoded as never).finish())), `${name}: the generated encoder's bytes`).toBe(true);
      a.release?.();
    }
    expect(off.packedModel(8, encodedHeaders, packed, 50)).toBeNull();
    expect(on.packedModel(8, encodedHeaders, packed, 50)).toBeNull();
  });
});

describe('a federation with zero-copy framing on and off', () => {
  let dir: string | undefined;
  let coordinator: Coordinator | undefined;
  let institutions: TestInstitution[] = [];
  afterEach(async () => {
    await cleanUp({ institutions, coordinators: [coordinator], dir });
    institutions = [];
    coordinator = undefined;
    dir = undefined;
  });

  /**
   * One seeded run with DPFED_ZERO_COPY = `env` for the coordinator and the institutions (undefined: unset),
   * and the coordinator's own `zeroCopy` option when given; the committed models of every version and the
   * round summaries.
   */
  async function run(o: {
    env?: string;
    coordinatorZeroCopy?: boolean;
    argv: string[];
    institutions: (address: string) => Promise<TestInstitution[]>;
  }): Promise<{ models: Float32Array[]; rounds: RoundSummary[] }> {
    return withZeroCopyEnv(o.env, async () => {
      dir = tempDir('dpfed-zero-copy-');
      const config = runConfig(['--privacy', 'off', '--aggregation', 'plain', '--round-timeout', '60', '--phase-timeout', '60', '--task-pickup-timeout', '60', '--seed', '7', ...o.argv]);
      coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, zeroCopy: o.coordinatorZeroCopy });
      const seen = recordRounds(coordinator);
      institutions = await o.institutions(`127.0.0.1:${coordinator.port}`);
      await within(start(institutions), 120_000, 'the institutions to finish');
      await coordinator.finished;
      expect(seen.failures).toEqual([]);
      const { store, runId } = coordinator;
      const models = [0, ...store.rounds(runId).map((r) => r.modelVersion)].map((v) => store.model(runId, v)!.parameters);
      const result = { models, rounds: seen.rounds };
      await cleanUp({ institutions, coordinators: [coordinator], dir });
      institutions = [];
      coordinator = undefined;
      dir = undefined;
      return result;
    });
  }

  const same = (a: { models: Float32Array[]; rounds: RoundSummary[] }, b: { models: Float32Array[]; rounds: RoundSummary[] }) => {
    expect(b.models.length).toBe(a.models.length);
    a.models.forEach((m, v) =>
      expect(Buffer.from(b.models[v].buffer, b.models[v].byteOffset, b.models[v].byteLength).equals(Buffer.from(m.buffer, m.byteOffset, m.byteLength)), `model version ${v}`).toBe(true),
    );
    // (a loaded machine must not drop a slow institution from one run's round: the deadlines above are long)
    const figures = (r: RoundSummary[]) => r.map((s) => [s.round, s.participants, s.institutions.map((i) => i.id).sort(), s.dropped, s.auc, s.accuracy]);
    expect(figures(b.rounds)).toEqual(figures(a.rounds));
    // the round's loss is a float sum over the institutions in the order their results arrive, which the
    // framing does not fix: equal up to the rounding of that sum
    b.rounds.forEach((r, i) => expect(Math.abs(r.loss - a.rounds[i].loss), `round ${r.round} loss`).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(a.rounds[i].loss))));
  };

  it('models that fit one frame (TfjsLearner, 3 institutions, 2 rounds): bit-identical models and AUCs', async () => {
    const slices = bankSlices(3, { rowsPerBank: 1200 });
    const argv = ['--rounds', '2', '--min-clients', '3', '--model', 'mlp:16'];
    const banks = (address: string) => Promise.all(slices.map((data, k) => tfjsInstitution({ id: `bank-${k + 1}`, address, data })));
    const zeroCopy = await run({ argv, institutions: banks });
    const generated = await run({ env: '0', argv, institutions: banks });
    same(zeroCopy, generated);
    expect(zeroCopy.rounds.every((r) => r.auc > 0.5)).toBe(true);
  }, 300_000);

  it('a model in chunks (1.1M parameters, over 4 MiB): bit-identical all on, all off, and with only the coordinator off (its option)', async () => {
    const argv = ['--rounds', '1', '--min-clients', '2', '--model', 'mlp:1024,1050', '--features', '30'];
    const banks = async (address: string) => [0.01, -0.02].map((shift, k) => makeInstitution({ id: `bank-${k + 1}`, address, learner: new ShiftLearner(shift, 100 * (k + 1)) }));
    const zeroCopy = await run({ argv, institutions: banks });
    same(zeroCopy, await run({ env: '0', argv, institutions: banks }));
    same(zeroCopy, await run({ coordinatorZeroCopy: false, argv, institutions: banks }));
    expect(zeroCopy.models[1].length).toBeGreaterThan(1_100_000);
  }, 300_000);
});
