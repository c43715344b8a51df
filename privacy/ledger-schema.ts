// The ledger's SQLite tables (created if absent):
//   ledger_meta          key/value: format, countersigner_public_key (hex), head_seq, head_hash, head_signature
//   ledger_institutions  an institution's identity public key and declared budget (a later row with the same key
//                        and another budget updates the budget; another key is refused)
//   ledger_events        one privacy event per (institution, run, round, mode), with the institution's signature
//   ledger_refusals      why the holder of this ledger stopped sampling / training an institution in a round
// All three row tables share ONE chain: seq runs 1, 2, 3 … across them, and every row stores
//   prev_hash        row_hash of seq − 1 (for seq 1: SHA-256("dpfed.v1/ledger-genesis" 0x00 countersigner key))
//   row_hash         SHA-256(prev_hash || canonical row bytes || institution signature (events only))
//   countersignature Ed25519 by the countersigner over encodeCanonical("dpfed.v1/ledger-countersign", row_hash)
// and ledger_meta holds the head (seq, hash) with the countersigner's signature over it, so removing rows from
// the end is detected too. SQLite triggers refuse UPDATE and DELETE on the row tables (defence in depth; verify()
// does not rely on them). The hashing is in ledger-hashing.ts.
export const FORMAT = 'dpfed.v1/ledger';
export const ROW_TABLES = ['ledger_institutions', 'ledger_events', 'ledger_refusals'] as const;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_institutions (
  seq INTEGER PRIMARY KEY, institution_id TEXT NOT NULL, public_key TEXT NOT NULL,
  budget_epsilon REAL NOT NULL, budget_delta REAL NOT NULL, time TEXT NOT NULL,
  prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL, countersignature TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_institutions_by_id ON ledger_institutions (institution_id, seq);
CREATE TABLE IF NOT EXISTS ledger_events (
  seq INTEGER PRIMARY KEY, institution_id TEXT NOT NULL, run_id TEXT NOT NULL, round INTEGER NOT NULL,
  mode TEXT NOT NULL, sample_rate REAL NOT NULL, noise_multiplier REAL NOT NULL, steps INTEGER NOT NULL,
  clip_norm REAL NOT NULL, delta REAL NOT NULL, model_version INTEGER NOT NULL, time TEXT NOT NULL,
  institution_signature TEXT NOT NULL, prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL, countersignature TEXT NOT NULL,
  UNIQUE (institution_id, run_id, round, mode));
CREATE TABLE IF NOT EXISTS ledger_refusals (
  seq INTEGER PRIMARY KEY, institution_id TEXT NOT NULL, run_id TEXT NOT NULL, round INTEGER NOT NULL,
  reason TEXT NOT NULL, projected_epsilon REAL NOT NULL, time TEXT NOT NULL,
  prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL, countersignature TEXT NOT NULL,
  UNIQUE (institution_id, run_id, round));
${ROW_TABLES.map(
  (t) => `
CREATE TRIGGER IF NOT EXISTS ${t}_no_update BEFORE UPDATE ON ${t} BEGIN SELECT RAISE(ABORT, '${t} is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ${t}_no_delete BEFORE DELETE ON ${t} BEGIN SELECT RAISE(ABORT, '${t} is append-only'); END;`,
).join('')}
`;
