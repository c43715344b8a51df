// One of the processes of test/ledger-race.test.ts: opens a shared institution ledger file and tries to
// record `count` privacy events with appendWithinBudget, starting at a given wall-clock time so the
// processes contend. Prints one JSON line: how many events it recorded and how many were refused.
// argv: ledgerPath seedHex institutionId tag count startAtMs
import Database from 'better-sqlite3';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { identityFromSeed } from '@dpfed/privacy/identity';
import { signEvent, type LedgerEvent } from '@dpfed/privacy/ledger-event';
import { BudgetExceededError, PrivacyLedger } from '@dpfed/privacy/ledger';

const [path, seedHex, institutionId, tag, countText, startAtText] = process.argv.slice(2);
const identity = identityFromSeed(Buffer.from(seedHex, 'hex'));
const db = new Database(path);
db.pragma('busy_timeout = 20000');
const ledger = new PrivacyLedger(db, { countersigner: identity });
const accountant = makeAccountant('rdp');
let recorded = 0;
let refused = 0;
const startAt = Number(startAtText);
while (Date.now() < startAt) {
  /* spin until the common start so both processes write at once */
}
for (let i = 0; i < Number(countText); i++) {
  const event: LedgerEvent = {
    institutionId,
    runId: `race-${tag}`,
    round: i + 1,
    mode: 'record',
    sampleRate: 0.02,
    noiseMultiplier: 1,
    steps: 50,
    clipNorm: 1,
    delta: 1e-5,
    modelVersion: i,
    time: new Date().toISOString(),
  };
  try {
    ledger.appendWithinBudget(event, signEvent(event, identity), accountant);
    recorded++;
  } catch (error) {
    if (!(error instanceof BudgetExceededError)) throw error;
    refused++;
  }
}
db.close();
process.stdout.write(JSON.stringify({ tag, recorded, refused }) + '\n');
