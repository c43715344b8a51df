// DP at the data holder. Record level: before each round the institution projects its ε after the
// round's planned steps and refuses to train past its own budget; after training it records the
// mechanism in its own local ledger and signs the event it sends to the coordinator. Client level: it
// calibrates the noise multiplier itself, refuses a round that asks for less noise or would pass its
// budget, and records every round it is offered (joined or not, each is a subsampled release for it).
// In both modes the event enters the ledger only within the budget, checked in the same transaction.
// Private evaluation (record level): it adds at least its own planned noise to its class histograms and
// records the release before the vector leaves.
import type { EvaluationNoisePlan } from '@dpfed/privacy/evaluation-mechanism';
import type { LedgerReceipt } from '@dpfed/privacy/receipts';
import type { LedgerHeadMsg, PrivacyEventMsg } from '@dpfed/proto/wire';
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
  reason?: 'budget' | 'already-released' | 'unplanned';
  /** The noise to add and the multiplier to record (present when allowed). */
  noise?: EvaluationNoisePlan;
  projectedEpsilon: number;
  budgetEpsilon: number;
  detail: string;
}

export interface ClientPrivacy {
  beforeRound(task: TaskContext, learner: Learner): RoundDecision;
  /** Records the round's event in the institution's own ledger, within its budget (throws BudgetExceededError
   * from privacy/ledger.ts, nothing recorded, when it would pass it), and returns the signed event to send. */
  recordRelease(task: TaskContext, mechanism: MechanismReport): PrivacyEventMsg;
  /** The head of the institution's own ledger signed with its identity key (a receipt for the coordinator). */
  signedHead?(): LedgerHeadMsg;
  /** row_hash of row `seq` of the institution's own ledger (bytes), or undefined when it has no such row. */
  rowHashAt?(seq: number): Uint8Array | undefined;
  /** Keeps a receipt of the coordinator's ledger (its signed head), beside the institution's own ledger. */
  keepCoordinatorReceipt?(receipt: LedgerReceipt): void;
  /** Client level: whether this round may be released (own budget, not already released); noiseMultiplier is the institution's own z. */
  beforeClientRound?(task: TaskContext): RoundDecision;
  /** Client level: records the round's release (at the task's z) in the local ledger, within its budget
   * (throws BudgetExceededError, nothing recorded, when it would pass it). */
  recordClientRelease?(task: TaskContext): void;
  /** Private evaluation: the noise to add (at least the institution's own plan), or a refusal. */
  beforeEvaluation?(task: TaskContext, o: { requested: number; secure?: { threshold: number }; crossSite?: boolean }): EvaluationDecision;
  /** Private evaluation: records the event in the institution's ledger (before the vector leaves) and returns it signed (mode "cross-site" with crossSite). */
  recordEvaluation?(task: TaskContext, noise: EvaluationNoisePlan, o?: { crossSite?: boolean }): PrivacyEventMsg;
  /**
   * Before a run's first round (client-sdk/run-preparation.ts): the noise plan of the run, calibrated now
   * and kept, and the noise multiplier a record-level round would add (null in other modes). Reads and
   * records nothing in the ledger; the round's own beforeRound still decides.
   */
  prepare?(task: TaskContext, learner: Learner): number | null;
}
