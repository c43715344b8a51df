// Each institution's own metrics of every global model, on its validation rows: computed, logged, emitted
// and returned, equal to an independent computation (the committed model from the coordinator's store,
// rebuilt as a tf.LayersModel, scored on the same rows), and never sent: the coordinator's store keeps
// only the private (noisy) evaluation, and no value of them appears in any byte an institution sent.
import { readFileSync, existsSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { buildLayersModel } from '@dpfed/coordinator/model-export';
import { classificationReport } from '@dpfed/client/classification-metrics';
import { describeLocalMetrics, localModelMetrics, type LocalModelMetrics } from '@dpfed/client/local-metrics';
import { generateIdentity } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { bankSlices, cleanUp, enrol, recordRounds, runConfig, start, startTestCoordinator, tempDir, tfjsInstitution, wasmTf, within, type TestInstitution } from './helpers/federation-fixture.ts';

let dir: string | undefined;
let coordinator: Coordinator | undefined;
let institutions: TestInstitution[] = [];
let proxy: Server | undefined;

afterEach(async () => {
  proxy?.close();
  proxy = undefined;
  await cleanUp({ institutions, coordinators: [coordinator], dir });
  institutions = [];
  coordinator = undefined;
  dir = undefined;
});

/** A TCP relay to `target` that keeps every byte the institutions send (plaintext gRPC: the wire as it is). */
async function relay(target: number): Promise<{ port: number; sent: Buffer[] }> {
  const sent: Buffer[] = [];
  const sockets = new Set<Socket>();
  proxy = createServer((inbound) => {
    const outbound = connect(target, '127.0.0.1');
    sockets.add(inbound).add(outbound);
    inbound.on('data', (chunk: Buffer) => sent.push(Buffer.from(chunk)));
    inbound.pipe(outbound).pipe(inbound);
    const end = () => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
  });
  proxy.on('close', () => sockets.forEach((s) => s.destroy()));
  await new Promise<void>((resolve) => proxy!.listen(0, '127.0.0.1', resolve));
  return { port: (proxy.address() as { port: number }).port, sent };
}

/**
 * The encodings a figure would have in a message (protobuf doubles, little-endian) or a SQLite row (REAL,
 * big-endian): 8 bytes each, so a chance match in the scanned bytes is out of the question (4-byte float32
 * patterns are not scanned: in megabytes of tensors and pages one of them turns up by chance).
 */
function encodings(value: number): Buffer[] {
  const le = Buffer.alloc(8);
  le.writeDoubleLE(value);
  const be = Buffer.alloc(8);
  be.writeDoubleBE(value);
  return [le, be];
}

/** Figures of an entry that only the local computation produces: not 0, 1 or a simple fraction that other figures share. */
function distinctive(m: LocalModelMetrics, o: { countsToo: boolean }): number[] {
  // accuracy, precision and recall are ratios of small counts (k/n): the coordinator's own figures (its noisy
  // global accuracy, stored in its database) can be the same fraction by chance, so they are scanned for on
  // the wire only, where no such figure travels from an institution
  const figures = o.countsToo ? [m.auc, m.prAuc, m.logLoss, m.accuracy, m.precision, m.recall] : [m.auc, m.prAuc, m.logLoss];
  return figures.filter((x): x is number => x !== null && x > 0 && Number.isFinite(x) && !Number.isInteger(x * 64));
}

describe("an institution's own metrics of every global model", () => {
  it('are computed per model on its validation rows, match an independent computation, and never leave it', async () => {
    dir = tempDir('dpfed-local-metrics-');
    const dbPath = join(dir, 'coordinator.sqlite');
    const rounds = 2;
    const config = runConfig([
      '--rounds',
      String(rounds),
      '--min-clients',
      '3',
      '--privacy',
      'record',
      '--epsilon',
      '3',
      '--aggregation',
      'plain',
      '--model',
      'logistic',
      '--round-timeout',
      '60',
      '--phase-timeout',
      '30',
    ]);
    coordinator = await startTestCoordinator({ dbPath, config, insecure: true });
    const seen = recordRounds(coordinator);
    const wire = await relay(coordinator.port);
    const slices = bankSlices(3, { rowsPerBank: 1200, seed: 'local-metrics' });
    const events = new Map<string, LocalModelMetrics[]>();
    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      const identity = generateIdentity();
      enrol(coordinator, id, identity.publicKey);
      const institution = await tfjsInstitution({
        id,
        identity,
        address: `127.0.0.1:${wire.port}`,
        enrol: false,
        transport: { insecure: true },
        data: slices[k],
        seed: id,
        privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`), budget: { epsilon: 3, delta: 1e-5 } },
      });
      events.set(id, []);
      institution.client.on('local-metrics', (m: LocalModelMetrics) => events.get(id)!.push(m));
      institutions.push(institution);
    }
    const results = await within(start(institutions), 120_000, 'the clients to finish');
    await coordinator.finished;
    expect(seen.failures).toEqual([]);
    expect(seen.rounds.map((r) => r.round)).toEqual([1, 2]);

    const tf = await wasmTf();
    const runId = coordinator.runId;
    const all: LocalModelMetrics[] = [];
    for (const [k, institution] of institutions.entries()) {
      const own = results[k].localMetrics!;
      // the initial model (trained from in round 1) and each round's global model, once each
      expect(
        own.map((m) => m.round),
        institution.id,
      ).toEqual([0, 1, 2]);
      expect(new Set(own.map((m) => m.modelId)).size).toBe(3);
      expect(events.get(institution.id)).toEqual(own);
      const validation = institution.validation!;
      for (const m of own) {
        expect(m.n).toBe(validation.n);
        expect(institution.logs, `${institution.id} logs round ${m.round}`).toContain(`[${institution.id}] ${describeLocalMetrics(m)}`);
        // independently: the model the coordinator committed, as a tf.LayersModel, on the same rows
        const stored = coordinator.store.model(runId, m.round);
        expect(stored, `model version ${m.round} is stored`).toBeDefined();
        const layers = buildLayersModel(tf, config.modelSpec, stored!.parameters);
        const scores = tf.tidy(() => (layers.predict(tf.tensor2d(validation.x, [validation.n, validation.dim])) as import('@tensorflow/tfjs').Tensor).dataSync() as Float32Array);
        layers.dispose();
        const report = classificationReport(scores, validation.y);
        expect(m.auc!).toBeCloseTo(report.auc!, 4);
        expect(m.prAuc!).toBeCloseTo(report.prAuc!, 4);
        expect(m.logLoss).toBeCloseTo(report.logLoss, 4);
        expect(m.accuracy).toBeCloseTo(report.accuracy, 6);
        expect(m.precision).toBeCloseTo(report.precision, 6);
        expect(m.recall).toBeCloseTo(report.recall, 6);
        // and from the learner's own logits of the stored model: the same figures exactly
        const again = localModelMetrics(
          await institution.learner.validationScores!(stored!.parameters, {
            runId,
            round: m.round,
            modelVersion: m.round,
            spec: config.modelSpec,
            config: { ...config.task, strategy: 'fedavg', proximalMu: 0, seed: '1' },
          }),
          { round: m.round, modelId: m.modelId },
        );
        expect(again).toEqual(m);
        all.push(m);
      }
    }

    // the coordinator's evaluation of each round is the private one: the noisy sum with its error band,
    // no per-institution figure
    for (let round = 1; round <= rounds; round++) {
      expect(coordinator.store.metric(runId, round, '', 'auc_stderr')).toBeGreaterThan(0);
      for (const institution of institutions) expect(coordinator.store.metric(runId, round, institution.id, 'auc')).toBeNull();
    }
    // no local figure in any byte an institution sent, nor in the coordinator's database
    const sentBytes = Buffer.concat(wire.sent);
    expect(sentBytes.length).toBeGreaterThan(10_000);
    coordinator.store.db.pragma('wal_checkpoint(TRUNCATE)');
    const stored = Buffer.concat([dbPath, `${dbPath}-wal`].filter((p) => existsSync(p)).map((p) => readFileSync(p)));
    // the scans see what they scan: a double an institution did send (its signed training event's noise
    // multiplier) is found on the wire, and a figure the coordinator stored (its AUC's stderr) in its file
    const sentEvent = new PrivacyLedger(coordinator.store.db).events({ institutionId: institutions[0].id, runId })[0].event;
    expect(sentBytes.includes(encodings(sentEvent.noiseMultiplier)[0])).toBe(true);
    expect(stored.includes(encodings(coordinator.store.metric(runId, 1, '', 'auc_stderr')!)[1])).toBe(true);
    let checked = 0;
    for (const m of all) {
      for (const value of distinctive(m, { countsToo: true })) {
        for (const bytes of encodings(value)) {
          expect(sentBytes.includes(bytes), `${value} (round ${m.round}) in the bytes sent`).toBe(false);
          checked++;
        }
      }
      for (const value of distinctive(m, { countsToo: false })) {
        for (const bytes of encodings(value)) expect(stored.includes(bytes), `${value} (round ${m.round}) in the coordinator's database`).toBe(false);
        expect(sentBytes.includes(Buffer.from(value.toFixed(6))), `${value.toFixed(6)} as text in the bytes sent`).toBe(false);
      }
    }
    expect(checked).toBeGreaterThan(50);
  }, 240_000);

  it('is off with localMetrics: false (nothing computed, the plain local-validation line instead)', async () => {
    dir = tempDir('dpfed-local-metrics-off-');
    const config = runConfig(['--rounds', '1', '--min-clients', '3', '--privacy', 'off', '--model', 'logistic', '--round-timeout', '60', '--phase-timeout', '30']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 600, seed: 'local-metrics-off' });
    for (let k = 0; k < 3; k++) {
      institutions.push(await tfjsInstitution({ id: `bank-${k + 1}`, address, data: slices[k], clientOptions: { localMetrics: k !== 0 } }));
    }
    let emitted = 0;
    institutions[0].client.on('local-metrics', () => emitted++);
    const results = await within(start(institutions), 90_000, 'the clients to finish');
    expect(results[0].localMetrics).toBeUndefined();
    expect(emitted).toBe(0);
    expect(institutions[0].logs.some((l) => /on my validation rows/.test(l))).toBe(false);
    expect(institutions[0].logs.some((l) => /local validation \(stays here\): AUC/.test(l))).toBe(true);
    expect(results[1].localMetrics!.map((m) => m.round)).toEqual([0, 1]);
  }, 120_000);
});
