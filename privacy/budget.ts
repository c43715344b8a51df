// Privacy budgets: the same pure checks run at the data holder (before it trains) and at the coordinator
// (before it schedules an institution). ε is always composed from all events by the accountant, never summed.
import type { Accountant } from './accountant.ts';
import { validateMechanismEvent, type MechanismEvent } from './mechanism-event.ts';

export interface PrivacyBudget {
  epsilon: number;
  delta: number;
}

export interface BudgetCheck {
  allowed: boolean;
  /** ε after the spent and the planned events, composed. */
  projectedEpsilon: number;
  /** ε of the spent events alone (0 when none). */
  spentEpsilon: number;
  reason?: string;
}

/** Throws an Error naming the bad field unless ε > 0 is finite and δ is in (0, 1). */
export function validateBudget(budget: PrivacyBudget, label = 'budget'): void {
  if (!budget || typeof budget !== 'object') throw new Error(`${label}: expected { epsilon, delta }`);
  if (typeof budget.epsilon !== 'number' || !Number.isFinite(budget.epsilon) || budget.epsilon <= 0) {
    throw new Error(`${label}.epsilon must be a positive finite number, got ${budget.epsilon}`);
  }
  if (typeof budget.delta !== 'number' || !Number.isFinite(budget.delta) || budget.delta <= 0 || budget.delta >= 1) {
    throw new Error(`${label}.delta must be in (0, 1), got ${budget.delta}`);
  }
}

function validateEvents(events: readonly MechanismEvent[], label: string): void {
  if (!Array.isArray(events)) throw new Error(`${label}: expected an array of mechanism events`);
  events.forEach((e, i) => {
    try {
      validateMechanismEvent(e, i);
    } catch (error) {
      throw new Error(`${label}: ${(error as Error).message}`);
    }
  });
}

/** ε of the composition of `events` at δ (0 for no events). */
export function composedEpsilon(events: readonly MechanismEvent[], delta: number, accountant: Accountant): { epsilon: number; order?: number } {
  if (events.length === 0) return { epsilon: 0 };
  return accountant.epsilon(events, delta);
}

/** Would running `plannedEvents` on top of `spentEvents` stay within the budget? */
export function checkBudget(spentEvents: readonly MechanismEvent[], plannedEvents: readonly MechanismEvent[], budget: PrivacyBudget, accountant: Accountant): BudgetCheck {
  validateBudget(budget);
  validateEvents(spentEvents, 'spentEvents');
  validateEvents(plannedEvents, 'plannedEvents');
  const spentEpsilon = composedEpsilon(spentEvents, budget.delta, accountant).epsilon;
  const projectedEpsilon = composedEpsilon([...spentEvents, ...plannedEvents], budget.delta, accountant).epsilon;
  if (projectedEpsilon <= budget.epsilon) return { allowed: true, projectedEpsilon, spentEpsilon };
  return {
    allowed: false,
    projectedEpsilon,
    spentEpsilon,
    reason:
      `projected epsilon ${projectedEpsilon.toPrecision(6)} after the planned events would exceed the budget epsilon ${budget.epsilon} ` +
      `(spent so far ${spentEpsilon.toPrecision(6)}, delta ${budget.delta}, ${accountant.kind} accountant)`,
  };
}

/** `rounds` repetitions of a round's events, folded into one event per distinct (q, σ): k·T steps of one
 * subsampled Gaussian compose exactly like k separate events of T steps. */
function repeatRound(perRound: readonly MechanismEvent[], rounds: number): MechanismEvent[] {
  return perRound.map((e) => ({ sampleRate: e.sampleRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps * rounds }));
}

/** The largest number of further rounds, each made of `perRoundEvent`(s), that keeps the composed ε within the
 * budget; 0 when even one round would exceed it, `maxRounds` when that many still fit. Galloping then binary
 * search: ε grows with the number of rounds. */
export function projectedRoundsLeft(
  spentEvents: readonly MechanismEvent[],
  perRoundEvent: MechanismEvent | readonly MechanismEvent[],
  budget: PrivacyBudget,
  accountant: Accountant,
  maxRounds = 10000,
): number {
  validateBudget(budget);
  validateEvents(spentEvents, 'spentEvents');
  const perRound: readonly MechanismEvent[] = Array.isArray(perRoundEvent) ? perRoundEvent : [perRoundEvent as MechanismEvent];
  validateEvents(perRound, 'perRoundEvent');
  if (perRound.length === 0) throw new Error('perRoundEvent: at least one mechanism event is needed');
  if (!Number.isSafeInteger(maxRounds) || maxRounds < 0) throw new Error(`maxRounds must be a non-negative integer, got ${maxRounds}`);
  const fits = (rounds: number) => composedEpsilon([...spentEvents, ...repeatRound(perRound, rounds)], budget.delta, accountant).epsilon <= budget.epsilon;
  if (maxRounds === 0 || !fits(1)) return 0;
  // Gallop 1, 2, 4, … to bracket the answer (cheap: small step counts first), then bisect.
  let low = 1; // fits
  let high = 2;
  while (high <= maxRounds && fits(high)) {
    low = high;
    high *= 2;
  }
  if (low === maxRounds) return maxRounds;
  if (high > maxRounds) {
    if (fits(maxRounds)) return maxRounds;
    high = maxRounds; // does not fit
  }
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (fits(mid)) low = mid;
    else high = mid;
  }
  return low;
}
