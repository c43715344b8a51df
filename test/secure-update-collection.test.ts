// A SecAgg training collection driven to the end without a transport: the coordinator's collection posts
// its tasks on a real task board, and each institution answers them with the SDK's SecAggClient.
import { describe, expect, it } from 'vitest';
import { SecAggClient } from '@dpfed/client/secagg-client';
import type { Institution } from '@dpfed/coordinator/institution-registry';
import type { RoundContext } from '@dpfed/coordinator/round-collection';
import type { CollectedUpdates, TrainingOutcome } from '@dpfed/coordinator/round-types';
import { SecureUpdateCollection } from '@dpfed/coordinator/secure-update-collection';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { encodeWeightedUpdate, quantisationFromMessage } from '@dpfed/privacy/quantise';
import type { SecAggCollection } from '@dpfed/privacy/secagg-keys';
import type { TaskMsg } from '@dpfed/proto/wire';
import { testInstitution, testRoundContext, testRunConfig } from './helpers/round-context.ts';

interface Bank {
  institution: Institution;
  identity: IdentityKey;
  update: Float32Array;
  client?: SecAggClient;
  vector?: Uint32Array;
}

/** Answers the collection's current tasks as institutions would, until it resolves. `skip` says which tasks a bank leaves unanswered (it dropped out). */
async function answerUntilDone(ctx: RoundContext, collection: SecureUpdateCollection, banks: Bank[], skip: (bank: Bank, task: TaskMsg) => boolean): Promise<TrainingOutcome> {
  let outcome: TrainingOutcome | undefined;
  const done = collection.run().then((o) => (outcome = o));
  const handled = new Set<TaskMsg>();
  while (outcome === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    for (const bank of banks) {
      const task = ctx.board.current(bank.institution.id);
      if (!task || handled.has(task)) continue;
      handled.add(task);
      if (skip(bank, task)) {
        collection.drop(bank.institution.id, 'its Session stream closed');
        continue;
      }
      answer(collection, bank, task);
    }
  }
  await done;
  return outcome;
}

function answer(collection: SecureUpdateCollection, bank: Bank, task: TaskMsg): void {
  const secagg = task.secagg!;
  const envelope = task.envelope;
  const collectionName = secagg.collection as SecAggCollection;
  if (task.kind === 'TRAIN') {
    bank.client = new SecAggClient({
      identity: bank.identity,
      institutionId: bank.institution.id,
      index: secagg.index,
      context: { runId: envelope.runId, round: envelope.round, collection: collectionName },
      threshold: secagg.threshold,
      identityKeys: new Map(secagg.identities.map((p) => [p.institutionId, p.identityPublicKey] as const)),
      expectedGraph: 'complete',
    });
    const quantisation = quantisationFromMessage(secagg.quantisation);
    bank.vector = encodeWeightedUpdate(bank.update, bank.institution.declaredExamples ?? 1, quantisation);
    collection.receiveSecAgg(bank.institution, { envelope, collection: collectionName, advertise: bank.client.advertise() });
  } else if (task.kind === 'SECAGG_SHARE_KEYS') {
    collection.receiveSecAgg(bank.institution, { envelope, collection: collectionName, shareKeys: { shares: bank.client!.shareKeys(secagg.keys, secagg.neighbours, secagg.threshold) } });
  } else if (task.kind === 'SECAGG_MASKED_INPUT') {
    const masked = bank.client!.maskedInput(secagg.shares, bank.vector!);
    const sink = collection.openResult(bank.institution, { envelope, kind: 'TRAIN_RESULT', numExamples: 0, metrics: {}, tensorCount: 1, masked: true });
    sink.expectTensor('secagg/masked', [masked.length], 'UINT32', 0);
    sink.finish([{ name: 'secagg/masked', shape: [masked.length], dtype: 'UINT32', data: masked }]);
  } else if (task.kind === 'SECAGG_UNMASK') {
    collection.receiveSecAgg(bank.institution, { envelope, collection: collectionName, unmask: bank.client!.unmask(secagg.survivors, secagg.dropped) });
  } else {
    throw new Error(`unexpected task ${task.kind}`);
  }
}

function banks(): Bank[] {
  return [
    [0.5, -0.25, 0, 1],
    [-1, 0.5, 0.25, 0],
    [0.125, 0.125, -0.5, 0.75],
    [2, 2, 2, 2],
  ].map((update, i) => {
    const identity = generateIdentity();
    const institution = { ...testInstitution(`bank-${'abcd'[i]}`, [3, 1, 2, 4][i]), publicKey: identity.publicKey };
    return { institution, identity, update: Float32Array.from(update) };
  });
}

describe('SecAgg training collection (no transport)', () => {
  it('the coordinator learns only the weighted sum; a bank lost after sharing its keys is unmasked and left out', async () => {
    const all = banks();
    const ctx = testRoundContext({ config: testRunConfig({ minClients: 3 }, { aggregation: 'secagg' }), participants: all.map((b) => b.institution) });
    const collection = new SecureUpdateCollection(ctx);
    const outcome = (await answerUntilDone(ctx, collection, all, (bank, task) => bank.institution.id === 'bank-d' && task.kind === 'SECAGG_MASKED_INPUT')) as CollectedUpdates;
    expect(outcome.reported).toEqual(['bank-a', 'bank-b', 'bank-c']);
    const { sum } = outcome.contribution as { sum: { weightedDeltaSum: Float64Array; totalWeight: number; count: number } };
    expect(sum.count).toBe(3);
    expect(sum.totalWeight).toBeCloseTo(3 + 1 + 2, 2);
    const expected = [0, 1, 2, 3].map((j) => all.slice(0, 3).reduce((s, b) => s + (b.institution.declaredExamples ?? 1) * b.update[j], 0));
    sum.weightedDeltaSum.forEach((v, j) => expect(v).toBeCloseTo(expected[j], 2));
    expect(outcome.participants.map((p) => [p.institutionId, p.status])).toEqual([
      ['bank-a', 'reported'],
      ['bank-b', 'reported'],
      ['bank-c', 'reported'],
      ['bank-d', 'dropped'],
    ]);
    expect(outcome.participants[0].detail).toBe('example count hidden by secure aggregation');
    expect(outcome.metrics).toEqual([{ institutionId: '', name: 'secagg_dropped', value: 1 }]);
    // the collection is over: it takes no more secure-sum messages
    expect(collection.accepts('masked-result')).toBe(false);
  });

  it('below --min-clients after unmasking, the round fails naming the count', async () => {
    const all = banks();
    const ctx = testRoundContext({ config: testRunConfig({ minClients: 4 }, { aggregation: 'secagg' }), participants: all.map((b) => b.institution) });
    const outcome = await answerUntilDone(ctx, new SecureUpdateCollection(ctx), all, (bank, task) => bank.institution.id === 'bank-d' && task.kind === 'SECAGG_MASKED_INPUT');
    expect(outcome).toEqual({ failure: 'round 1: only 3 of 4 sampled institutions reported; --min-clients is 4' });
  });

  it('an unmasked update or a message for another collection is refused while the sum runs', async () => {
    const all = banks();
    const ctx = testRoundContext({ config: testRunConfig({ minClients: 3 }, { aggregation: 'secagg' }), participants: all.map((b) => b.institution) });
    const collection = new SecureUpdateCollection(ctx);
    const done = collection.run();
    const task = ctx.board.current('bank-a')!;
    expect(collection.accepts('masked-result')).toBe(true);
    expect(collection.accepts('update-result')).toBe(false);
    expect(() => collection.receiveSecAgg(all[0].institution, { envelope: task.envelope, collection: 'evaluation' })).toThrow('collection: "evaluation" is not the open secure sum ("update")');
    expect(() => collection.receiveSecAgg(all[0].institution, { envelope: { ...task.envelope, round: 7 }, collection: 'update' })).toThrow('envelope.round: round 7 is closed (current round 1)');
    collection.stop();
    expect(await done).toMatchObject({ failure: expect.stringMatching(/^round 1: secure aggregation aborted: /) });
  });
});
