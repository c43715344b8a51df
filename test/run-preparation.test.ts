// An institution prepares for a run's first round while the federation gathers (client-sdk/run-preparation.ts):
// the coordinator's WAIT tasks carry the next round's configuration, and on the first one the institution
// calibrates its noise plan and fills its noise ring at the round's scale, so round 1 draws every noise value
// from the ring (none in the training thread) and spends exactly what an unprepared institution spends.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TfjsLearner } from '@dpfed/client/tfjs-learner';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { bankSlices, federationScope, recordRounds, runConfig, start, startTestCoordinator, tempDir, tfjsInstitution, within } from './helpers/federation-fixture.ts';

const scope = federationScope();

describe('preparing for the first round', () => {
  it('a WAIT carries the run configuration; an institution that waited draws all of round 1 noise from its ring and spends what one that did not spends', async () => {
    const dir = (scope.dir = tempDir('dpfed-preparation-'));
    const config = runConfig(['--rounds', '1', '--min-clients', '2', '--privacy', 'record', '--epsilon', '3', '--delta', '1e-5', '--local-steps', '20', '--round-timeout', '60']);
    const coordinator = (scope.coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config }));
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(2, { rowsPerBank: 1500, seed: 'prepare' });
    const privacy = (id: string) => ({ ledgerPath: join(dir, `${id}.ledger.sqlite`), budget: { epsilon: 10, delta: 1e-5 } });
    const early = await tfjsInstitution({ id: 'bank-1', address, data: slices[0], privacy: privacy('bank-1') });
    const late = await tfjsInstitution({ id: 'bank-2', address, data: slices[1], privacy: privacy('bank-2') });
    scope.institutions = [early, late];

    // the first institution waits alone (min 2) and prepares from the WAIT's configuration
    const prepared = new Promise<{ runId: string; seconds: number }>((resolve) => early.client.once('prepared', resolve));
    const run = start([early]);
    expect((await within(prepared, 30_000, 'the first institution to prepare')).runId).toBe(coordinator.runId);
    // its noise pool exists, at the round's scale, before any round: nothing drawn from it yet
    expect((early.learner as TfjsLearner).noiseStats).toEqual({ fromWorker: 0, inThread: 0 });
    // nothing was recorded or released by preparing
    expect(early.privacy!.spent({ runId: coordinator.runId }).epsilon).toBe(0);
    const ledger = new PrivacyLedger(coordinator.store.db); // read-only: no countersigner
    expect(ledger.events({ institutionId: 'bank-1' })).toEqual([]);
    // give its noise worker time to fill the ring, then let the federation start
    await new Promise((r) => setTimeout(r, 1_000));
    await within(Promise.all([run, start([late])]), 90_000, 'the run to finish');
    await coordinator.finished;
    expect(seen.failures).toEqual([]);
    expect(seen.rounds.map((s) => s.participants)).toEqual([2]);

    const earlyStats = (early.learner as TfjsLearner).noiseStats!;
    expect(earlyStats.inThread).toBe(0);
    expect(earlyStats.fromWorker).toBeGreaterThan(0);
    // the same plan and the same spend, prepared or not
    const events = ledger
      .events({ runId: coordinator.runId })
      .map((r) => r.event)
      .filter((e) => e.mode === 'record');
    expect(events.map((e) => e.institutionId).sort()).toEqual(['bank-1', 'bank-2']);
    expect(events[0].noiseMultiplier).toBe(events[1].noiseMultiplier);
    expect(early.privacy!.spent({ runId: coordinator.runId }).epsilon).toBeCloseTo(late.privacy!.spent({ runId: coordinator.runId }).epsilon, 12);
    expect(early.logs.some((l) => /prepared for run/.test(l))).toBe(true);
  }, 150_000);
});
