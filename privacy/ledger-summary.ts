// What an institution's ledger rows add up to: ε composed over the rows shown and over all its rows, what
// remains of its budget, and how many more rounds like its latest one would fit.
import type { Accountant } from './accountant.ts';
import { composedEpsilon, projectedRoundsLeft, type PrivacyBudget } from './budget.ts';
import type { LedgerEvent } from './ledger-event.ts';
import type { InstitutionRow, LedgerRow, RefusalRow } from './ledger-rows.ts';
import type { MechanismEvent } from './mechanism-event.ts';

export interface InstitutionSummary {
  institutionId: string;
  publicKey: string;
  accountant: 'rdp' | 'pld';
  /** ε composed over the events shown (those matching the filter). */
  epsilon: number;
  order?: number;
  /** δ the ε is stated at: the institution's budget δ. */
  delta: number;
  /** ε composed over ALL this institution's events in this ledger (every run): what the budget is charged. */
  epsilonTotal: number;
  budget: PrivacyBudget;
  /** budget ε − epsilonTotal, never below 0. */
  remaining: number;
  /** Further rounds like the institution's latest event that fit the budget; null without events. */
  projectedRoundsLeft: number | null;
  events: LedgerRow[];
  refusals: RefusalRow[];
}

export const mechanismOf = (e: LedgerEvent): MechanismEvent => ({ sampleRate: e.sampleRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps });

/**
 * What one more round is projected to cost: the latest training release, plus the latest evaluation once
 * there was one (a cross-site release happens once per run, at its end: it is no part of a round).
 */
function nextRoundOf(rows: readonly LedgerRow[]): MechanismEvent[] {
  const latest = (...modes: LedgerEvent['mode'][]) => [...rows].reverse().find((r) => modes.includes(r.event.mode))?.event;
  return [latest('record', 'client'), latest('evaluation')].filter((e): e is LedgerEvent => e !== undefined).map(mechanismOf);
}

/**
 * One institution's summary. `events.shown` are the rows the filter selects (one run, or all), `events.all`
 * every row of the institution in chain order; `runFiltered` says whether they differ.
 */
export function summariseInstitution(
  institution: InstitutionRow,
  events: { shown: LedgerRow[]; all: readonly LedgerRow[]; runFiltered: boolean },
  refusals: RefusalRow[],
  accountant: Accountant,
): InstitutionSummary {
  const all = events.all.map((r) => mechanismOf(r.event));
  const shown = composedEpsilon(
    events.shown.map((r) => mechanismOf(r.event)),
    institution.budget.delta,
    accountant,
  );
  const total = events.runFiltered ? composedEpsilon(all, institution.budget.delta, accountant).epsilon : shown.epsilon;
  const nextRound = nextRoundOf(events.all);
  const summary: InstitutionSummary = {
    institutionId: institution.institutionId,
    publicKey: institution.publicKey,
    accountant: accountant.kind,
    epsilon: shown.epsilon,
    delta: institution.budget.delta,
    epsilonTotal: total,
    budget: institution.budget,
    remaining: Math.max(0, institution.budget.epsilon - total),
    projectedRoundsLeft: nextRound.length ? projectedRoundsLeft(all, nextRound, institution.budget, accountant) : null,
    events: events.shown,
    refusals,
  };
  if (shown.order !== undefined) summary.order = shown.order;
  return summary;
}
