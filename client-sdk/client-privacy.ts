// DP at the data holder. Record level: before each round the institution projects its ε after the
// round's planned steps and refuses to train past its own budget; after training it records the
// mechanism in its own local ledger and signs the event it sends to the coordinator. Client level: it
// calibrates the noise multiplier itself, refuses a round that asks for less noise or would pass its
// budget, and records every round it is offered (joined or not, each is a subsampled release for it).
// Private evaluation (record level): it adds at least its own planned noise to its class histograms and
// records the release before the vector leaves.
import type { EvaluationNoisePlan } from '../privacy/evaluation-mechanism.ts';
import type { PrivacyEventMsg } from '../proto/wire.ts';
import type { Learner, MechanismReport, TaskContext } from './learner.ts';

export interface RoundDecision {
  allowed: boolean;
  /** Why not: the budget would be exceeded, or this round's update was already released (training again would spend twice). */
  reason?: 'budget' | 'already-released' | 'noise';
  /** The noise multiplier calibrated for this institution (meaningful when allowed). */
  noiseMultiplier: number;
  projectedEpsilon: number;
  budgetEpsilon: number;
  detail: string;
}

/** Whether (and with what noise) the institution releases a private evaluation of a round's candidate. */
export interface EvaluationDecision {
  allowed: boolean;
  reason?: 'budget' | 'already-released';
  /** The noise to add and the multiplier to record (present when allowed). */
  noise?: EvaluationNoisePlan;
  projectedEpsilon: number;
  budgetEpsilon: number;
  detail: string;
}

export interface ClientPrivacy {
  beforeRound(task: TaskContext, learner: Learner): RoundDecision;
  recordRelease(task: TaskContext, mechanism: MechanismReport): PrivacyEventMsg;
  /** Client level: whether this round may be released (own budget, not already released); noiseMultiplier is the institution's own z. */
  beforeClientRound?(task: TaskContext): RoundDecision;
  /** Client level: records the round's release (at the task's z) in the local ledger. */
  recordClientRelease?(task: TaskContext): void;
  /** Private evaluation: the noise to add (at least the institution's own plan), or a refusal. */
  beforeEvaluation?(task: TaskContext, o: { requested: number; secure?: { threshold: number } }): EvaluationDecision;
  /** Private evaluation: records the event in the institution's ledger (before the vector leaves) and returns it signed. */
  recordEvaluation?(task: TaskContext, noise: EvaluationNoisePlan): PrivacyEventMsg;
}
