/**
 * One row of a simulation's results: a grid point (a "setting") run as one baseline, scored on one set of
 * rows. `dpfed sim` writes these rows to `results.csv` and `results.json`; the plots read them.
 */

/** Which way the model was trained: the federation, each institution alone, or all rows pooled. */
export type Baseline = 'federated' | 'local' | 'centralised';

export interface SimResultRow {
  settingId: string; // stable id of the grid point, e.g. sha256 of its canonical JSON, 16 hex chars
  baseline: Baseline;
  institution: string | null; // local baseline: the institution trained alone; else null
  scoredOn: 'test' | 'own'; // 'test' = the common held-out test rows; 'own' = (local only) its own held-out rows
  epsilon: number | null; // null = no DP (Infinity is written as null in JSON and 'inf' in CSV)
  delta: number | null;
  privacy: 'off' | 'record' | 'client';
  aggregation: 'plain' | 'secagg';
  model: string; // 'logistic' | 'mlp:64,32' ...
  rounds: number;
  institutions: number;
  dropout: number; // fraction of institutions that drop out per round
  split: string; // 'iid' | 'dirichlet:0.5' | 'quantity:1' | 'column:site'
  seed: number;
  auc: number;
  prAuc: number;
  accuracy: number;
  aucPerRound: number[]; // federated: AUC on the test rows after each committed round; others: []
  epsilonSpent: Record<string, number>; // per institution (federated with DP); {} otherwise
  seconds: number;
}

/** A row as `dpfed sim` writes it: the result, and the fingerprint of the rows it was scored on. */
export interface SimRecord extends SimResultRow {
  /** SHA-256 of the scored rows' inputs and labels, 16 hex characters (simulations/sim-partition.ts rowsFingerprint). */
  scoredRows: string;
  /** Federated with DP: the ε each institution had spent after each committed round (from its own ledger); {} otherwise. */
  epsilonPerRound: Record<string, number[]>;
}
