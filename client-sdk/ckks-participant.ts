// This institution's part in CKKS aggregation (the optional @dpfed/ckks plugin, through privacy/ckks-plugin.ts): updates are encrypted under the
// federation's public key; the institution chosen as key holder generates that key pair (the secret key
// never leaves it) and decrypts only each round's sum, once, and only a sum of at least two updates.
import { createHash } from 'node:crypto';
import { CkksDecryptor, CkksEncryptor, createFederationKeys } from '@dpfed/privacy/ckks-plugin';
import { ckksKeyBinding } from '@dpfed/privacy/ckks-key-binding';
import { CKKS_UPDATE_CLIP_RANGE, ckksUpdateVector } from '@dpfed/privacy/ckks-update-encoding';
import { addGaussianNoise } from '@dpfed/privacy/gaussian-noise';
import type { IdentityKey } from '@dpfed/privacy/identity';
import { CKKS_SUM_ARTIFACT, COLLECTIONS, TENSOR_NAMES } from '@dpfed/proto/shared-names';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { CkksTaskMsg, Envelope, ResultHeaderMsg, TaskMsg } from '@dpfed/proto/wire';
import type { ParticipantChannel } from './participant-channel.ts';
import { ProtocolRefusal } from './protocol-refusal.ts';
import type { Release } from './released-update.ts';

export class CkksParticipant {
  /** As key holder: the run's secret key (never sent), and the rounds already decrypted (once each). */
  private readonly secrets = new Map<string, Uint8Array>();
  private readonly decrypted = new Set<string>();
  private encryptor: { keyHex: string; encryptor: CkksEncryptor } | null = null;

  constructor(
    private readonly channel: ParticipantChannel,
    private readonly self: { institutionId: string; identity: IdentityKey },
  ) {}

  /** Frees the encryptor (its SEAL objects). */
  dispose(): void {
    this.encryptor?.encryptor.dispose();
    this.encryptor = null;
  }

  /** Sends `release` encrypted under the round's federation key (with the institution's distributed-DP noise share), or declines saying why. */
  async sendUpdate(ckks: CkksTaskMsg, release: Release, header: ResultHeaderMsg): Promise<void> {
    const envelope = header.envelope;
    // Distributed DP: the institution's own noise share for the offered institutions, added before encryption;
    // a noisy release is encrypted once (a second sum with the same noise could be differenced).
    const share = release.noiseShareStd(Math.max(1, ckks.offered ?? 0));
    if (share > 0) {
      if (!(ckks.offered && ckks.offered >= 1)) {
        await this.channel.decline(
          envelope,
          'noise',
          `round ${envelope.round}: the CKKS task does not say how many institutions were offered the round, so this institution cannot size its noise share`,
        );
        return;
      }
      if (release.encoded?.noisy) {
        await this.channel.decline(envelope, 'already-released', `round ${envelope.round}: this round's noisy update was already encrypted into a sum`);
        return;
      }
    }
    const update = share > 0 ? Float32Array.from(release.delta) : release.delta;
    if (share > 0) {
      addGaussianNoise(update, share);
      release.encoded = { fingerprint: 'ckks', vector: new Uint32Array(0), noisy: true };
      this.channel.emit('released', { round: envelope.round, digest: createHash('sha256').update(update).digest('hex') });
    }
    const values = ckksUpdateVector(update, release.weight, ckks.weightCap, CKKS_UPDATE_CLIP_RANGE);
    if (values.length !== ckks.vectorLength) throw new Error(`ckks: update length ${values.length}, the coordinator expects ${ckks.vectorLength}`);
    const keyHex = Buffer.from(ckks.publicKey).toString('hex');
    if (this.encryptor?.keyHex !== keyHex) {
      this.encryptor?.encryptor.dispose();
      this.encryptor = { keyHex, encryptor: await CkksEncryptor.create(ckks.publicKey) };
    }
    const ciphertexts = this.encryptor.encryptor.encrypt(values);
    values.fill(0);
    const tensors: NamedTensor[] = ciphertexts.map((c, i) => ({ name: `ckks/${i}`, shape: [c.length], dtype: 'BYTES', data: c }));
    await this.channel.connection.pushResult({ ...header, numExamples: 0, metrics: { seconds: header.metrics.seconds ?? 0 }, encrypted: true, tensorCount: tensors.length }, tensors);
  }

  /** CKKS_KEYGEN: the run's federation key pair; the public key leaves, bound to the run by this institution's signature. */
  async keygen(envelope: Envelope): Promise<void> {
    const keys = await createFederationKeys();
    this.secrets.set(envelope.runId, keys.secretKey);
    const signature = this.self.identity.sign(ckksKeyBinding(envelope.runId, this.self.institutionId, keys.publicKey));
    this.channel.log(`CKKS: generated the federation key pair for run ${envelope.runId}; the secret key stays here`);
    await this.channel.connection.pushSecAgg({ envelope, collection: COLLECTIONS.update, ckksPublicKey: { key: keys.publicKey, signature } });
  }

  /** CKKS_DECRYPT: the round's encrypted sum, decrypted once; refused when it could reveal a single update. */
  async decrypt(envelope: Envelope, task: TaskMsg): Promise<void> {
    const round = `${envelope.runId}/${envelope.round}`;
    const secret = this.secrets.get(envelope.runId);
    const summands = task.ckks?.summands ?? 0;
    if (!secret) throw new ProtocolRefusal(`CKKS decryption requested for run ${envelope.runId}, whose secret key this institution does not hold`);
    if (this.decrypted.has(round)) throw new ProtocolRefusal(`CKKS decryption requested twice in round ${envelope.round}: refused (it could reveal a single update)`);
    if (summands < 2) throw new ProtocolRefusal(`CKKS decryption of a "sum" of ${summands} update(s) refused: it would reveal a single institution's update`);
    this.decrypted.add(round);
    const tensors = await this.channel.connection.downloadModel(envelope, undefined, CKKS_SUM_ARTIFACT);
    const decryptor = await CkksDecryptor.create(secret);
    try {
      const length = task.ckks!.vectorLength;
      const sum = decryptor.decryptSum(
        tensors.map((t) => t.data as Uint8Array),
        length,
      );
      await this.channel.connection.pushResult(
        { envelope, kind: 'CKKS_DECRYPTED_SUM', numExamples: 0, metrics: { summands }, privacyEvent: undefined, tensorCount: 1, masked: false, encrypted: false },
        [{ name: TENSOR_NAMES.ckksSum, shape: [length], dtype: 'FLOAT64', data: sum }],
      );
    } finally {
      decryptor.dispose();
    }
  }
}
