// The round machine's privacy hooks: who may be scheduled, what a training result must carry, what
// noise the coordinator adds in client-level mode, and the ledger rows committed with the round.
import type { PrivacyEventMsg } from '../proto/wire.ts';
import type { Institution } from './institution-registry.ts';

export interface RoundPrivacy {
  /** Filters the candidates of a round: those whose recorded ε (plus the round) would exceed their budget are refused (and the refusal recorded). */
  admissible(round: number, candidates: Institution[]): Institution[];
  /** Checks the privacy event attached to a training result; throws an RpcError naming the field. */
  checkResultEvent(institution: Institution, round: number, modelVersion: number, event: PrivacyEventMsg | null | undefined): void;
  /** Checks the signed event of a private evaluation of round `round`'s candidate (mode "evaluation"); throws an RpcError naming the field. */
  checkEvaluationEvent(institution: Institution, round: number, event: PrivacyEventMsg | null | undefined): void;
  /** Client-level DP with plain or CKKS aggregation: adds the coordinator's Gaussian noise N(0, (zS)²) to the sum of clipped updates. */
  noiseSum(sum: Float32Array): void;
  /** Maximum L2 norm a client-level update may have (Infinity when unconstrained). */
  updateNormBound(): number;
  /** Ledger writes of the round (training events, then private-evaluation events), run inside the round's commit transaction. */
  commitWrites(round: number, modelVersion: number, events: Map<string, PrivacyEventMsg>, participants: string[], actualNoiseMultiplier?: number,
    evaluationEvents?: Map<string, PrivacyEventMsg>): () => void;
  /** ε summary per institution for progress output. */
  summary(): { id: string; epsilon: number; delta: number; budget: number | null }[];
}
