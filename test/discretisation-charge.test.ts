// The discretisation's charge where record-level events are made (privacy/discretisation-cost.ts): an
// institution with a TfjsLearner adds noise at a sigma whose charged figure covers the calibrated one,
// trains with it, and its own ledger records the charged multiplier and the sampler tail charged to delta.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import type { TaskContext } from '@dpfed/client/learner';
import { TfjsLearner } from '@dpfed/client/tfjs-learner';
import { planInstitutionNoise } from '@dpfed/privacy/evaluation-mechanism';
import { discretisationCost, tailDelta } from '@dpfed/privacy/discretisation-cost';
import { generateIdentity } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { bankSlices, prepareBank, runConfig, tempDir, wasmTf } from './helpers/federation-fixture.ts';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const DELTA = 1e-5;

function taskOf(round: number): TaskContext {
  const config = runConfig(['--rounds', '3', '--privacy', 'record', '--epsilon', '3', '--delta', String(DELTA)]);
  return { runId: 'charge-run', round, modelVersion: round - 1, spec: config.modelSpec, config: { ...config.task, strategy: config.strategy, proximalMu: 0, seed: config.seed } };
}

describe('record-level events carry the discretisation charge', () => {
  it('noise covers the calibrated sigma after the charge; the ledger records the charged sigma and delta + the tail', async () => {
    dir = tempDir('dpfed-charge-');
    const { train, validation, schema } = await prepareBank(bankSlices(1, { rowsPerBank: 800, seed: 'charge' })[0]);
    const learner = new TfjsLearner(await wasmTf(), train, validation, { schema });
    const budget = { epsilon: 4, delta: DELTA };
    const privacy = new InstitutionPrivacy({ institutionId: 'bank-1', identity: generateIdentity(), budget, ledgerPath: join(dir, 'own.sqlite') });
    try {
      const task = taskOf(1);
      const planned = learner.plannedMechanism(task)!;
      expect(planned.dimension).toBeGreaterThan(0);
      const record = task.config.privacy.record!;
      // the training sigma the institution calibrates beside the run's planned private evaluations
      const share = task.config.evaluation.private;
      const calibrated = planInstitutionNoise({
        targetEpsilon: record.targetEpsilon,
        budget,
        accountant: record.accountant,
        training: { sampleRate: planned.sampleRate, steps: planned.steps, rounds: record.plannedRounds },
        evaluation: share ? { epsilon: share.epsilon, every: task.config.evaluation.every ?? 1 } : null,
      }).trainingMultiplier;

      const decision = privacy.beforeRound(task, learner);
      expect(decision.allowed).toBe(true);
      // more noise than calibrated, by the snapping grid's share only, and its charged figure covers the calibration
      expect(decision.noiseMultiplier).toBeGreaterThan(calibrated);
      expect(decision.noiseMultiplier).toBeLessThan(calibrated * (1 + 1e-3));
      const cost = discretisationCost({ noiseMultiplier: decision.noiseMultiplier, clipNorm: record.clipNorm, dimension: planned.dimension!, steps: planned.steps });
      expect(cost.chargedNoiseMultiplier).toBeGreaterThanOrEqual(calibrated);

      const outcome = await learner.train(new Float32Array(planned.dimension!), task, decision.noiseMultiplier);
      expect(outcome.mechanism!.noiseMultiplier).toBe(cost.chargedNoiseMultiplier);
      expect(outcome.mechanism!.samplerTailMass).toBe(cost.samplerTailMass);
      const event = privacy.recordRelease(task, outcome.mechanism!);
      expect(event.noiseMultiplier).toBe(cost.chargedNoiseMultiplier);
      expect(event.delta).toBe(DELTA + tailDelta(cost.samplerTailMass, budget.epsilon));
      expect(event.delta).toBeGreaterThan(DELTA);
      // what the institution reports spent is stated at the budget's δ plus every event's charge
      expect(privacy.spent().delta).toBe(DELTA + (event.delta - DELTA));
      const db = new Database(join(dir, 'own.sqlite'), { readonly: true });
      try {
        const rows = new PrivacyLedger(db).events({ institutionId: 'bank-1' });
        expect(rows.map((r) => [r.event.noiseMultiplier, r.event.delta])).toEqual([[event.noiseMultiplier, event.delta]]);
      } finally {
        db.close();
      }
    } finally {
      privacy.close();
    }
  });

  it('a budget epsilon so large that the tail charge reaches 1 records a vacuous delta, just below 1', async () => {
    dir = tempDir('dpfed-charge-');
    const { train, validation, schema } = await prepareBank(bankSlices(1, { rowsPerBank: 400, seed: 'charge-big' })[0]);
    const learner = new TfjsLearner(await wasmTf(), train, validation, { schema });
    const privacy = new InstitutionPrivacy({ institutionId: 'bank-2', identity: generateIdentity(), budget: { epsilon: 1000, delta: DELTA }, ledgerPath: join(dir, 'own.sqlite') });
    try {
      const task = taskOf(1);
      const event = privacy.recordRelease(task, { sampleRate: 0.1, noiseMultiplier: 1, steps: 10, clipNorm: 1, samplerTailMass: 1e-15 });
      expect(event.delta).toBe(1 - 2 ** -53);
      const none = privacy.recordRelease(taskOf(2), { sampleRate: 0.1, noiseMultiplier: 1, steps: 10, clipNorm: 1 });
      expect(none.delta).toBe(DELTA); // a learner that reports no tail is charged nothing
    } finally {
      privacy.close();
    }
  });
});
