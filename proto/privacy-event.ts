// One privacy event as the ε ledger records it: the PrivacyEvent message of proto/dpfed/v1/federation.proto
// without its signature. The wire types (wire.ts) and the ledger (privacy/ledger-event.ts, which validates,
// encodes and signs events) share this shape.

/**
 * The release an event accounts for: record-level training (DP-SGD), client-level training (DP-FedAvg),
 * a private evaluation of a candidate model on the institution's validation rows (the Gaussian
 * mechanism on its class histograms: sample rate 1, one step, clip norm = the sensitivity 1; see
 * privacy/evaluation-mechanism.ts), or the cross-site evaluation of a run's final model (the same
 * mechanism, the institution's own histograms released alone, once per run, at the last round). Being
 * part of the ledger's (institution, run, round, mode) key, releases of the same round are separate
 * rows, and all of them compose into ε.
 */
export type LedgerMode = 'record' | 'client' | 'evaluation' | 'cross-site';
export const LEDGER_MODES: readonly LedgerMode[] = ['record', 'client', 'evaluation', 'cross-site'];

export interface LedgerEvent {
  institutionId: string;
  runId: string;
  /** Federation round the event belongs to (uint32). */
  round: number;
  mode: LedgerMode;
  /** Poisson sampling rate q in (0, 1]: examples per step (record) or institutions per round (client). */
  sampleRate: number;
  /** Noise multiplier σ > 0 (noise standard deviation = σ · clip norm). */
  noiseMultiplier: number;
  /** Number of noisy steps (positive integer). */
  steps: number;
  /** L2 clip norm C > 0 (per example in record mode, per update in client mode). */
  clipNorm: number;
  /** δ the institution accounts this event at, in (0, 1). */
  delta: number;
  /** Model version the event trained from (non-negative integer). */
  modelVersion: number;
  /** ISO-8601 time, e.g. 2024-05-01T12:00:00.000Z. */
  time: string;
}
