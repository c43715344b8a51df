// The round machine's privacy hooks: who may be scheduled, whether the federation's budget allows another
// round, what a training result or a private evaluation must carry, and the ledger rows of every sum the
// coordinator sees (training and evaluation alike: recorded when revealed, not at commit).
import type { ReleasePolicy } from '@dpfed/privacy/release-policy';
import type { PrivacyEventMsg } from '@dpfed/proto/wire';
import type { Institution } from './institution-registry.ts';

export interface RoundPrivacy {
  /** Filters the candidates of a round: those whose recorded ε (plus the round) would exceed their budget are refused (and the refusal recorded). */
  admissible(round: number, candidates: Institution[]): Institution[];
  /** Client-level DP: whether this round number already has a revealed sum in the ledger (a resumed run skips it: a round is released once). */
  releasedRound(round: number): boolean;
  /** Client-level DP: why one more round would pass the federation's (ε, δ) target (null when it fits). */
  roundRefusal(round: number): string | null;
  /** Checks the privacy event attached to a training result; throws an RpcError naming the field. */
  checkResultEvent(institution: Institution, round: number, modelVersion: number, event: PrivacyEventMsg | null | undefined): void;
  /** Checks the signed event of a private evaluation of round `round`'s candidate (mode "evaluation"); throws an RpcError naming the field. */
  checkEvaluationEvent(institution: Institution, round: number, event: PrivacyEventMsg | null | undefined): void;
  /**
   * Records the privacy events of a sum the moment it is revealed to the coordinator, in its own
   * transaction, whether or not the round then commits: the institutions' signed record-level events, or
   * under client-level DP the federation's event with the noise multiplier actually present.
   */
  recordRevealedSum(round: number, modelVersion: number, events: Map<string, PrivacyEventMsg>, actualNoiseMultiplier?: number): void;
  /**
   * Records the institutions' signed private-evaluation events of round `round`'s candidate the moment
   * the noisy histogram sum (or, under plain aggregation, the noisy histograms) is revealed: the same rule
   * as recordRevealedSum, in its own transaction, kept if the round then fails; idempotent.
   */
  recordEvaluationEvents(round: number, events: Map<string, PrivacyEventMsg>): void;
  /** Checks the signed event of an institution's cross-site release of the final model (round `round`, mode "cross-site"); throws an RpcError naming the field. */
  checkCrossSiteEvent(institution: Institution, round: number, event: PrivacyEventMsg | null | undefined): void;
  /** Records an institution's cross-site event the moment its noisy histograms arrive (its own transaction; idempotent). */
  recordCrossSiteEvent(institutionId: string, event: PrivacyEventMsg): void;
  /** ε summary per institution for progress output. */
  summary(): { id: string; epsilon: number; delta: number; budget: number | null }[];
}

/**
 * Under local DP-SGD every training result carries its institution's signed event for this round and
 * model version (checked here); under the other noise placements the institution records none with it.
 */
export function checkTrainingEvent(
  policy: ReleasePolicy,
  privacy: RoundPrivacy | undefined,
  institution: Institution,
  round: number,
  modelVersion: number,
  event: PrivacyEventMsg | null | undefined,
): void {
  if (policy.noise === 'local-dp-sgd') privacy?.checkResultEvent(institution, round, modelVersion, event);
}
