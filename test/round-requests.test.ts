// The routing of institutions' requests during a round, without a transport: a real coordinator store
// (SQLite in a temp dir), registry, task board and served models, and a real plain training collection
// as the round's open collection.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorStore } from '@dpfed/coordinator/coordinator-store';
import { Enrolment } from '@dpfed/coordinator/enrolment';
import { InstitutionRegistry } from '@dpfed/coordinator/institution-registry';
import { CoordinatorReceipts } from '@dpfed/coordinator/ledger-receipts';
import { PlainUpdateCollection } from '@dpfed/coordinator/plain-update-collection';
import type { RoundCollection } from '@dpfed/coordinator/round-collection';
import { RoundModels } from '@dpfed/coordinator/round-models';
import { RoundRequests } from '@dpfed/coordinator/round-requests';
import { RoundTasks } from '@dpfed/coordinator/round-tasks';
import type { RpcError } from '@dpfed/coordinator/rpc-error';
import { generateIdentity } from '@dpfed/privacy/identity';
import type { DeclineRequestMsg, Envelope, ResultHeaderMsg } from '@dpfed/proto/wire';
import { testInstitution, testRoundContext, testRunConfig } from './helpers/round-context.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function refusal(fn: () => unknown): RpcError {
  try {
    fn();
  } catch (error) {
    return error as RpcError;
  }
  throw new Error('expected a refusal');
}

/** Round 1 of run "run-1" with bank-a and bank-b sampled; `open` is the round's open collection. */
function setUp() {
  const dir = mkdtempSync(join(tmpdir(), 'dpfed-requests-'));
  dirs.push(dir);
  const store = new CoordinatorStore(join(dir, 'coordinator.sqlite'));
  const registry = new InstitutionRegistry(store, 15_000, new Enrolment(store.db), new CoordinatorReceipts(store, generateIdentity()));
  const config = testRunConfig({ minClients: 1 });
  const participants = [testInstitution('bank-a'), testInstitution('bank-b')];
  const ctx = testRoundContext({ config, participants });
  const models = new RoundModels(config.modelSpec, ctx.shapes, ctx.global, 0);
  const declined: unknown[] = [];
  const state = { phase: 'training', open: null as RoundCollection<unknown> | null };
  const requests = new RoundRequests({
    runId: 'run-1',
    config,
    registry,
    board: ctx.board,
    models,
    tasks: new RoundTasks('run-1', config, models),
    round: () => 1,
    phase: () => state.phase,
    collecting: () => state.open,
    store,
    declined: (event) => declined.push(event),
  });
  return { store, ctx, requests, state, declined, participants };
}

const envelope = (over: Partial<Envelope> = {}): Envelope => ({ runId: 'run-1', round: 1, modelVersion: 0, institutionId: 'bank-a', session: Buffer.alloc(0), ...over });
const trainHeader = (over: Partial<Envelope> = {}): ResultHeaderMsg => ({ envelope: envelope(over), kind: 'TRAIN_RESULT', numExamples: 0, metrics: {}, tensorCount: 2, masked: false });

describe('round requests', () => {
  it("a result is refused with its route's reason while no collection takes it, and reaches the open collection once one does", async () => {
    const { ctx, requests, state, participants, store } = setUp();
    const [a] = participants;
    expect(refusal(() => requests.openResult(a, trainHeader())).message).toBe('envelope.round: round 1 is not collecting training results (phase training)');
    expect(refusal(() => requests.openResult(a, { ...trainHeader(), masked: true })).message).toBe('envelope.round: round 1 is not running a secure sum (phase training)');
    const secagg = refusal(() => requests.receiveSecAgg(a, { envelope: envelope(), collection: 'update' }));
    expect([secagg.code, secagg.message]).toEqual([status.FAILED_PRECONDITION, 'envelope.round: round 1 is not running a secure sum (phase training)']);
    const collection = new PlainUpdateCollection(ctx, true);
    state.open = collection;
    const done = collection.run();
    // the envelope is judged before what is open: another round, another model version, another run
    expect(refusal(() => requests.openResult(a, trainHeader({ round: 2 }))).message).toBe('envelope.round: round 2 is closed (current round 1)');
    expect(refusal(() => requests.openResult(a, trainHeader({ modelVersion: 1 }))).message).toBe('envelope.model_version: expected 0 for this phase, got 1');
    expect(refusal(() => requests.openResult(a, trainHeader({ runId: 'run-0' }))).message).toBe('envelope.run_id: "run-0" is not the current run "run-1"');
    a.unresponsive = 'its Session stream closed';
    const sink = requests.openResult(a, trainHeader());
    expect(a.unresponsive).toBeNull(); // a result is a sign of life
    expect(sink.tensorCount).toBe(2);
    collection.stop();
    await done;
    store.close();
  });

  it('a poll gets its current task with its own id in the envelope; WAIT when there is none; DONE once the run is done or it is excluded', async () => {
    const { ctx, requests, state, participants, store } = setUp();
    const [a, b] = participants;
    ctx.board.post('bank-a', ctx.task('TRAIN', 0));
    const task = await requests.pullTask(a, 0, () => {});
    expect(task.kind).toBe('TRAIN');
    expect(task.envelope.institutionId).toBe('bank-a');
    const wait = await requests.pullTask(b, 0, () => {});
    expect([wait.kind, wait.message, wait.retryAfterMs]).toEqual(['WAIT', 'training (round 1)', 1_000]);
    expect((await requests.pullTask(b, 30, () => {})).retryAfterMs).toBe(0);
    b.excludedReason = 'budget: projected ε 5 > budget 3';
    expect(await requests.pullTask(b, 0, () => {})).toMatchObject({ kind: 'DONE', message: 'excluded: budget: projected ε 5 > budget 3' });
    state.phase = 'done';
    expect(await requests.pullTask(a, 0, () => {})).toMatchObject({ kind: 'DONE', message: 'run complete' });
    store.close();
  });

  it('models by version; the CKKS sum only from an open CKKS collection; unknown artifacts refused', () => {
    const { ctx, requests, participants, store } = setUp();
    const tensors = requests.modelTensors(envelope());
    expect(tensors.map((t) => [t.name, t.shape, t.dtype])).toEqual(ctx.shapes.map((p) => [p.name, p.shape, 'FLOAT32']));
    expect(requests.modelIdOf(envelope())).toMatch(/^[0-9a-f]{24}$/);
    expect(requests.modelIdOf(envelope({ runId: 'run-0' }))).toBe('');
    expect(refusal(() => requests.modelTensors(envelope({ modelVersion: 1 }))).message).toBe('envelope.model_version: version 1 is not available (current 0)');
    expect(refusal(() => requests.modelTensors(envelope(), participants[0], 'ckks-sum')).message).toBe('artifact: no CKKS sum is awaiting decryption in this round');
    const unknown = refusal(() => requests.modelTensors(envelope(), participants[0], 'weights'));
    expect([unknown.code, unknown.message]).toEqual([status.INVALID_ARGUMENT, 'artifact: unknown artifact "weights"']);
    store.close();
  });

  it('a budget decline excludes the institution, records the refusal, leaves the open collection and gets no more tasks this round', async () => {
    const { ctx, requests, state, participants, store, declined } = setUp();
    const collection = new PlainUpdateCollection(ctx, true);
    state.open = collection;
    const done = collection.run();
    const request: DeclineRequestMsg = { envelope: envelope({ institutionId: 'bank-b' }), reason: 'budget', projectedEpsilon: 5, budgetEpsilon: 3, detail: 'ε would pass 3' };
    requests.decline(participants[1], request);
    expect(declined).toEqual([{ institution: 'bank-b', reason: 'budget', detail: 'ε would pass 3' }]);
    expect(store.schedulingRefusals('run-1')).toEqual([{ round: 1, institutionId: 'bank-b', reason: 'institution declined: ε would pass 3' }]);
    expect(collection.awaiting('bank-b')).toBe(false);
    ctx.board.post('bank-b', ctx.task('TRAIN', 0));
    expect(ctx.board.current('bank-b')).toBeUndefined();
    // bank-a's update arrives: the collection closes without waiting for bank-b
    const sink = requests.openResult(participants[0], trainHeader());
    ctx.shapes.forEach((p, i) => sink.place!(i, 'FLOAT32', p.size * 4));
    sink.finish([]);
    const outcome = await done;
    expect('participants' in outcome && outcome.participants.map((p) => [p.institutionId, p.status, p.detail])).toEqual([
      ['bank-b', 'declined', 'budget: ε would pass 3'],
      ['bank-a', 'reported', 'weight 1'],
    ]);
    store.close();
  });
});
