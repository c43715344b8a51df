// This institution's part in the secure sums (SecAgg, privacy/secagg-keys.ts and client-sdk/secagg-client.ts)
// of a round's updates or evaluations: it advertises fresh keys with the vector waiting to be masked, then
// answers the coordinator's later steps (share keys, masked input, unmask). A step that could leak its
// input is refused (ProtocolRefusal) and the sum given up: the others recover from it as from a dropout.
import type { IdentityKey } from '@dpfed/privacy/identity';
import type { SecAggCollection } from '@dpfed/privacy/secagg-keys';
import type { CoordinatorLink } from '@dpfed/proto/coordinator-link';
import { COLLECTIONS, TENSOR_NAMES } from '@dpfed/proto/shared-names';
import { exitAtTestPoint } from '@dpfed/proto/test-exit-hook';
import type { Envelope, ResultHeaderMsg, SecAggTaskMsg, TaskMsg } from '@dpfed/proto/wire';
import { ProtocolRefusal } from './protocol-refusal.ts';
import { SecAggClient } from './secagg-client.ts';

/** Who this institution is in a secure sum. */
export interface SecureSumIdentity {
  institutionId: string;
  identity: IdentityKey;
}

export class SecureSumParticipant {
  /** Secure sums in progress, by run/round/collection: the protocol state and the vector to mask. */
  private readonly sums = new Map<string, { client: SecAggClient; vector: Uint32Array; header: ResultHeaderMsg }>();

  constructor(
    private readonly connection: CoordinatorLink,
    private readonly self: SecureSumIdentity,
  ) {}

  private key(runId: string, round: number, collection: string): string {
    return `${runId}/${round}/${collection}`;
  }

  /** Starts this institution's part of a secure sum: fresh keys, advertised; the vector waits for masking. */
  async start(envelope: Envelope, secagg: SecAggTaskMsg, vector: Uint32Array, header: ResultHeaderMsg): Promise<void> {
    if (vector.length !== secagg.vectorLength) throw new Error(`secure aggregation: vector length ${vector.length}, the coordinator expects ${secagg.vectorLength}`);
    const collection = secagg.collection as SecAggCollection;
    const client = new SecAggClient({
      identity: this.self.identity,
      institutionId: this.self.institutionId,
      index: secagg.index,
      context: { runId: envelope.runId, round: envelope.round, collection },
      threshold: secagg.threshold,
      identityKeys: new Map(secagg.identities.map((p) => [p.institutionId, new Uint8Array(p.identityPublicKey)] as const)),
      // recompute the masking graph from the key list and refuse neighbour lists that differ from it
      expectedGraph: secagg.graphNeighbours > 0 ? secagg.graphNeighbours : 'complete',
    });
    this.sums.set(this.key(envelope.runId, envelope.round, collection), { client, vector, header: { ...header, masked: true, numExamples: 0, tensorCount: 1 } });
    exitAtTestPoint(`${collection}/advertise`, envelope.round);
    await this.connection.pushSecAgg({ envelope, collection, advertise: client.advertise() });
  }

  /** Answers a SECAGG_SHARE_KEYS, SECAGG_MASKED_INPUT or SECAGG_UNMASK task of a sum started here. */
  async step(task: TaskMsg, envelope: Envelope): Promise<void> {
    const secagg = task.secagg;
    if (!secagg) throw new Error(`${task.kind} task without its secure-aggregation part`);
    const key = this.key(envelope.runId, envelope.round, secagg.collection);
    const state = this.sums.get(key);
    if (!state) throw new ProtocolRefusal(`no secure sum in progress for ${key}`);
    exitAtTestPoint(`${secagg.collection}/${task.kind === 'SECAGG_SHARE_KEYS' ? 'share-keys' : task.kind === 'SECAGG_MASKED_INPUT' ? 'masked-input' : 'unmask'}`, envelope.round);
    const refuse = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (error) {
        this.sums.delete(key);
        throw new ProtocolRefusal((error as Error).message);
      }
    };
    if (task.kind === 'SECAGG_SHARE_KEYS') {
      // A noisy evaluation's share of the noise was sized for the threshold it was given: a lower one would
      // let a sum of fewer shares (less noise than its ledger records) be revealed.
      if (secagg.collection === COLLECTIONS.evaluation && state.header.privacyEvent && secagg.threshold < state.client.threshold) {
        this.sums.delete(key);
        throw new ProtocolRefusal(`the threshold ${secagg.threshold} is below the ${state.client.threshold} this institution's noise share relies on`);
      }
      const shares = refuse(() => state.client.shareKeys(secagg.keys, secagg.neighbours, secagg.threshold));
      await this.connection.pushSecAgg({ envelope, collection: secagg.collection, shareKeys: { shares } });
    } else if (task.kind === 'SECAGG_MASKED_INPUT') {
      const masked = refuse(() => state.client.maskedInput(secagg.shares, state.vector));
      state.vector.fill(0);
      await this.connection.pushResult({ ...state.header, envelope }, [{ name: TENSOR_NAMES.secaggMasked, shape: [masked.length], dtype: 'UINT32', data: masked }]);
    } else {
      const body = refuse(() => state.client.unmask(secagg.survivors, secagg.dropped));
      this.sums.delete(key);
      await this.connection.pushSecAgg({ envelope, collection: secagg.collection, unmask: body });
    }
  }
}
