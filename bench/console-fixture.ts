// A coordinator database for the compliance console's tests and bench, written by the project's own code:
// CoordinatorStore commits each round (participants, metrics, model) and, inside the same transaction,
// PrivacyLedger appends every participant's event with a real Ed25519 signature by the institution and the
// coordinator's countersignature; refusals, dropouts, failed attempts and scheduling refusals included.
import { parseFlags } from '@dpfed/proto/command-flags';
import { runConfigFromFlags, runFlags } from '@dpfed/coordinator/run-flags';
import { CoordinatorStore, type ParticipantRecord } from '@dpfed/coordinator/coordinator-store';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { signEvent, type LedgerEvent } from '@dpfed/privacy/ledger-event';
import { PrivacyLedger } from '@dpfed/privacy/ledger';

export interface ConsoleFixtureOptions {
  path: string;
  institutions: number;
  rounds: number;
  /** Run ids; every run has `rounds` rounds. */
  runs?: string[];
  /** Budget ε of every institution. */
  budgetEpsilon?: number;
  /** Record an `auc_stderr` metric per round (the noise band). */
  aucStderr?: boolean;
  /** The last institution drops out of every third round (default true). */
  dropouts?: boolean;
}

export interface ConsoleFixture {
  coordinator: IdentityKey;
  institutionIds: string[];
  runs: string[];
}

const PARAMETERS = new Float32Array(8);

export function buildConsoleFixture(o: ConsoleFixtureOptions): ConsoleFixture {
  const runs = o.runs ?? ['run-1'];
  const store = new CoordinatorStore(o.path);
  store.db.pragma('synchronous = OFF');
  const coordinator = generateIdentity();
  const ledger = new PrivacyLedger(store.db, { countersigner: coordinator });
  const ids = Array.from({ length: o.institutions }, (_, i) => `bank-${String(i + 1).padStart(3, '0')}`);
  const keys = new Map(ids.map((id) => [id, generateIdentity()]));
  const budget = { epsilon: o.budgetEpsilon ?? 8, delta: 1e-5 };
  store.db.transaction(() => {
    for (const id of ids) {
      store.upsertInstitution(id, keys.get(id)!.publicKey, budget, 1000);
      ledger.registerInstitution(id, keys.get(id)!.publicKey, budget);
    }
  })();
  const config = runConfigFromFlags(
    parseFlags({ name: 'fixture', summary: 'console fixture', flags: runFlags({ rounds: o.rounds, minClients: 3, privacy: 'record', aggregation: 'secagg' }) }, [
      '--rounds',
      String(o.rounds),
      '--epsilon',
      '3',
      '--delta',
      '1e-5',
    ]),
  );
  const time = Date.UTC(2026, 0, 5, 9, 0, 0);
  for (const [runIndex, runId] of runs.entries()) {
    store.createRun({
      id: runId,
      createdAt: new Date(time + runIndex * 86_400_000).toISOString(),
      configJson: JSON.stringify(config),
      modelSpecJson: JSON.stringify(config.modelSpec),
      status: 'done',
      roundsPlanned: o.rounds,
    });
    store.saveInitialModel(runId, PARAMETERS);
    for (let round = 1; round <= o.rounds; round++) {
      // the last institution drops out of every third round
      const dropped = o.dropouts !== false && round % 3 === 0 && ids.length > 2 ? ids[ids.length - 1] : undefined;
      if (round === 2) store.recordRoundFailure(runId, round, `round ${round}: only 1 of 2 institutions reported before the deadline`);
      const participants: ParticipantRecord[] = ids.map((id) => ({
        institutionId: id,
        status: id === dropped ? 'dropped' : 'reported',
        numExamples: 1000,
        detail: id === dropped ? 'no result before the deadline' : '',
      }));
      const auc = 0.7 + 0.2 * (1 - Math.exp(-round / 3));
      const metrics = [
        { institutionId: '', name: 'auc', value: auc },
        { institutionId: '', name: 'loss', value: 0.5 * Math.exp(-round / 4) + 0.1 },
        { institutionId: '', name: 'accuracy', value: 0.9 + round * 0.001 },
        ...(o.aucStderr === false ? [] : [{ institutionId: '', name: 'auc_stderr', value: 0.02 / Math.sqrt(round) }]),
      ];
      const when = new Date(time + runIndex * 86_400_000 + round * 60_000).toISOString();
      store.commitRound({ runId, round, modelVersion: round, startedAt: when, seconds: 1.5, aggregation: 'secagg', model: PARAMETERS, strategyState: null, participants, metrics }, () => {
        for (const id of ids) {
          if (id === dropped) continue;
          const event: LedgerEvent = {
            institutionId: id,
            runId,
            round,
            mode: 'record',
            sampleRate: 0.01 + (ids.indexOf(id) % 5) * 0.002,
            noiseMultiplier: 1.1,
            steps: 20,
            clipNorm: 1,
            delta: 1e-5,
            modelVersion: round - 1,
            time: when,
          };
          ledger.append(event, signEvent(event, keys.get(id)!));
        }
      });
    }
    if (ids.length > 1) {
      store.recordSchedulingRefusal(runId, o.rounds, ids[1], 'projected epsilon would exceed the budget', budget.epsilon + 0.5, budget.epsilon);
      ledger.recordRefusal(ids[1], runId, o.rounds + 1, 'budget: projected epsilon would exceed the budget', budget.epsilon + 0.5);
    }
  }
  store.db.pragma('wal_checkpoint(TRUNCATE)');
  store.close();
  return { coordinator, institutionIds: ids, runs };
}
