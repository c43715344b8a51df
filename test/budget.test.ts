// Budget checks with the real accountants: refusal when the projection exceeds the budget, rounds left.
import { describe, expect, it } from 'vitest';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { checkBudget, projectedRoundsLeft, validateBudget } from '@dpfed/privacy/budget';
import type { MechanismEvent } from '@dpfed/privacy/mechanism-event';

const rdp = makeAccountant('rdp');
const DELTA = 1e-5;
const round: MechanismEvent = { sampleRate: 0.01, noiseMultiplier: 1.1, steps: 100 };
const repeat = (e: MechanismEvent, k: number) => Array.from({ length: k }, () => ({ ...e }));

describe('checkBudget', () => {
  it('allows a round whose projected epsilon stays within the budget, composing rather than summing', () => {
    const spent = repeat(round, 2);
    const result = checkBudget(spent, [round], { epsilon: 50, delta: DELTA }, rdp);
    expect(result.allowed).toBe(true);
    expect(result.reason).toBeUndefined();
    expect(result.spentEpsilon).toBe(rdp.epsilon(spent, DELTA).epsilon);
    expect(result.projectedEpsilon).toBe(rdp.epsilon([...spent, round], DELTA).epsilon);
    expect(result.projectedEpsilon).toBeGreaterThan(result.spentEpsilon);
    expect(result.projectedEpsilon).toBeLessThan(3 * rdp.epsilon([round], DELTA).epsilon);
  });

  it('refuses a round whose projected epsilon would exceed the budget, and says why', () => {
    const spent = repeat(round, 2);
    const spentEpsilon = rdp.epsilon(spent, DELTA).epsilon;
    const projected = rdp.epsilon([...spent, round], DELTA).epsilon;
    const budget = { epsilon: (spentEpsilon + projected) / 2, delta: DELTA };
    const result = checkBudget(spent, [round], budget, rdp);
    expect(result).toMatchObject({ allowed: false, spentEpsilon, projectedEpsilon: projected });
    expect(result.reason).toMatch(/would exceed the budget epsilon/);
    // Exactly at the budget is allowed.
    expect(checkBudget(spent, [round], { epsilon: projected, delta: DELTA }, rdp).allowed).toBe(true);
  });

  it('with nothing spent the spent epsilon is 0', () => {
    const result = checkBudget([], [round], { epsilon: 10, delta: DELTA }, rdp);
    expect(result.spentEpsilon).toBe(0);
    expect(result.projectedEpsilon).toBe(rdp.epsilon([round], DELTA).epsilon);
  });

  it('uses the budget delta', () => {
    const loose = checkBudget([], [round], { epsilon: 10, delta: 1e-3 }, rdp).projectedEpsilon;
    const tight = checkBudget([], [round], { epsilon: 10, delta: 1e-8 }, rdp).projectedEpsilon;
    expect(tight).toBeGreaterThan(loose);
  });

  it('names the bad input', () => {
    expect(() => checkBudget([], [round], { epsilon: 0, delta: DELTA }, rdp)).toThrow(/budget.epsilon/);
    expect(() => checkBudget([], [round], { epsilon: Number.NaN, delta: DELTA }, rdp)).toThrow(/budget.epsilon/);
    expect(() => checkBudget([], [round], { epsilon: 1, delta: 0 }, rdp)).toThrow(/budget.delta/);
    expect(() => checkBudget([], [{ ...round, sampleRate: 2 }], { epsilon: 1, delta: DELTA }, rdp)).toThrow(/plannedEvents.*sampleRate/);
    expect(() => checkBudget([{ ...round, steps: 0 }], [round], { epsilon: 1, delta: DELTA }, rdp)).toThrow(/spentEvents.*steps/);
    expect(() => validateBudget({ epsilon: 1, delta: 1.5 })).toThrow(/delta/);
  });
});

describe('projectedRoundsLeft', () => {
  it('finds the last round that fits: k rounds within the budget, k + 1 beyond it', () => {
    const spent = repeat(round, 3);
    const budget = { epsilon: 4, delta: DELTA };
    const k = projectedRoundsLeft(spent, round, budget, rdp);
    expect(k).toBeGreaterThan(0);
    expect(k).toBeLessThan(10000);
    // Checked with k separate events, not the folded form the search uses.
    expect(rdp.epsilon([...spent, ...repeat(round, k)], DELTA).epsilon).toBeLessThanOrEqual(budget.epsilon);
    expect(rdp.epsilon([...spent, ...repeat(round, k + 1)], DELTA).epsilon).toBeGreaterThan(budget.epsilon);
  });

  it('counts rounds made of several events', () => {
    const perRound = [round, { sampleRate: 0.01, noiseMultiplier: 2, steps: 10 }];
    const budget = { epsilon: 3, delta: DELTA };
    const k = projectedRoundsLeft([], perRound, budget, rdp);
    const rounds = (n: number) => Array.from({ length: n }, () => perRound).flat();
    expect(k).toBeGreaterThan(0);
    expect(rdp.epsilon(rounds(k), DELTA).epsilon).toBeLessThanOrEqual(budget.epsilon);
    expect(rdp.epsilon(rounds(k + 1), DELTA).epsilon).toBeGreaterThan(budget.epsilon);
    // The same answer as a linear scan, for every budget on a small grid.
    for (const epsilon of [0.5, 1, 1.7, 2.2, 3]) {
      let linear = 0;
      while (rdp.epsilon(rounds(linear + 1), DELTA).epsilon <= epsilon) linear++;
      expect(projectedRoundsLeft([], perRound, { epsilon, delta: DELTA }, rdp), `epsilon ${epsilon}`).toBe(linear);
    }
  });

  it('is 0 when the budget is already spent or one round does not fit, and capped at maxRounds', () => {
    const spentEpsilon = rdp.epsilon(repeat(round, 3), DELTA).epsilon;
    expect(projectedRoundsLeft(repeat(round, 3), round, { epsilon: spentEpsilon * 0.9, delta: DELTA }, rdp)).toBe(0);
    expect(projectedRoundsLeft([], round, { epsilon: rdp.epsilon([round], DELTA).epsilon * 0.99, delta: DELTA }, rdp)).toBe(0);
    const tiny: MechanismEvent = { sampleRate: 0.001, noiseMultiplier: 5, steps: 1 };
    expect(projectedRoundsLeft([], tiny, { epsilon: 50, delta: DELTA }, rdp, 100)).toBe(100);
    expect(projectedRoundsLeft([], tiny, { epsilon: 50, delta: DELTA }, rdp, 64)).toBe(64);
    expect(projectedRoundsLeft([], tiny, { epsilon: 50, delta: DELTA }, rdp, 1)).toBe(1);
    expect(projectedRoundsLeft([], tiny, { epsilon: 50, delta: DELTA }, rdp, 0)).toBe(0);
    expect(() => projectedRoundsLeft([], round, { epsilon: 1, delta: DELTA }, rdp, -1)).toThrow(/maxRounds/);
    expect(() => projectedRoundsLeft([], [], { epsilon: 1, delta: DELTA }, rdp)).toThrow(/perRoundEvent/);
  });

  it('works with the PLD accountant behind the same interface', () => {
    const pld = makeAccountant('pld');
    const budget = { epsilon: 3, delta: DELTA };
    const perRound: MechanismEvent = { sampleRate: 0.05, noiseMultiplier: 1.0, steps: 20 };
    const k = projectedRoundsLeft([], perRound, budget, pld, 200);
    expect(k).toBeGreaterThan(0);
    expect(pld.epsilon([{ ...perRound, steps: perRound.steps * k }], DELTA).epsilon).toBeLessThanOrEqual(budget.epsilon);
    if (k < 200) expect(pld.epsilon([{ ...perRound, steps: perRound.steps * (k + 1) }], DELTA).epsilon).toBeGreaterThan(budget.epsilon);
  });
});
