import { describe, expect, it } from 'vitest';
import { institutionsNeeded, offerIsRelease, sampleParticipants, waitForLive, type SamplingSettings } from '@dpfed/coordinator/participant-sampling';
import { secureSumGraph } from '@dpfed/coordinator/secure-sum-graph';

const settings = (over: Partial<SamplingSettings> = {}): SamplingSettings => ({ minClients: 2, sampleFraction: 1, sampleCount: 0, seed: 'seed-1', ...over });
const live = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `bank-${String.fromCharCode(97 + ((i * 7) % 26))}${i}` }));

describe('participant sampling', () => {
  it('the first round of a coordinator process waits for --wait-for institutions, later rounds for --min-clients', () => {
    expect(institutionsNeeded(settings({ waitFor: 5 }), 0)).toBe(5);
    expect(institutionsNeeded(settings({ waitFor: 5 }), 1)).toBe(2);
    expect(institutionsNeeded(settings({ waitFor: 1, minClients: 3 }), 0)).toBe(3);
    expect(institutionsNeeded(settings(), 0)).toBe(2);
  });

  it('secret-coin participation offers the round to every live institution, sorted by id', () => {
    const all = live(7);
    const offered = sampleParticipants(all, { settings: settings({ sampleCount: 2 }), participation: 'secret-coin', runId: 'r', round: 1 });
    expect(offered.map((p) => p.id)).toEqual(all.map((p) => p.id).sort((a, b) => a.localeCompare(b)));
  });

  it('samples --sample-count, or the fraction rounded up, never fewer than --min-clients nor more than are live', () => {
    const all = live(10);
    const pick = (over: Partial<SamplingSettings>) => sampleParticipants(all, { settings: settings(over), participation: 'every-offered', runId: 'r', round: 1 });
    expect(pick({ sampleCount: 4 })).toHaveLength(4);
    expect(pick({ sampleFraction: 0.25 })).toHaveLength(3);
    expect(pick({ sampleFraction: 0.01, minClients: 5 })).toHaveLength(5);
    expect(pick({ sampleCount: 50 })).toHaveLength(10);
    const ids = pick({ sampleCount: 4 }).map((p) => p.id);
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) expect(all.some((p) => p.id === id)).toBe(true);
  });

  it('the cohort is a function of the seed, run and round, whatever order the live institutions come in', () => {
    const all = live(20);
    const o = (round: number, seed = 'seed-1') => ({ settings: settings({ sampleCount: 5, seed }), participation: 'every-offered' as const, runId: 'run-x', round });
    const first = sampleParticipants(all, o(1)).map((p) => p.id);
    expect(sampleParticipants([...all].reverse(), o(1)).map((p) => p.id)).toEqual(first);
    const cohorts = new Set(
      [2, 3, 4, 5, 6].map((round) =>
        sampleParticipants(all, o(round))
          .map((p) => p.id)
          .join(','),
      ),
    );
    cohorts.add(
      sampleParticipants(all, o(1, 'seed-2'))
        .map((p) => p.id)
        .join(','),
    );
    // 6 other cohorts of 5 out of 20 (15,504 possible): at least some differ from the first
    expect([...cohorts].some((c) => c !== first.join(','))).toBe(true);
  });

  it('only secret-coin participation makes an offer a release', () => {
    expect(offerIsRelease('secret-coin')).toBe(true);
    expect(offerIsRelease('every-offered')).toBe(false);
  });

  it('waits until enough institutions are live, announcing the wait once; stops when told', async () => {
    let available = 1;
    const announced: number[] = [];
    const waiting = waitForLive({ needed: 3, live: () => live(available), stopped: () => false, onWaiting: (n) => announced.push(n) });
    setTimeout(() => (available = 2), 30);
    setTimeout(() => (available = 3), 80);
    expect(await waiting).toHaveLength(3);
    expect(announced).toEqual([1]);

    let stopped = false;
    const never = waitForLive({ needed: 3, live: () => live(0), stopped: () => stopped, onWaiting: () => {} });
    setTimeout(() => (stopped = true), 30);
    expect(await never).toBeNull();
  });
});

describe('secure sum graph', () => {
  it('every pair masks up to 64 participants, with at least a strict majority threshold and the configured fraction', () => {
    expect(secureSumGraph(5, { dropoutRate: 0.2, thresholdFraction: 0.5 })).toEqual({ graph: 'complete', threshold: 3 });
    expect(secureSumGraph(10, { dropoutRate: 0.2, thresholdFraction: 0.8 })).toEqual({ graph: 'complete', threshold: 8 });
    expect(secureSumGraph(3, { dropoutRate: 0.2, thresholdFraction: 1 }).threshold).toBe(3);
  });

  it('a sparse SecAgg+ graph above 64', () => {
    const { graph, threshold } = secureSumGraph(200, { dropoutRate: 0.1, thresholdFraction: 0.5 });
    expect(typeof graph).toBe('number');
    expect(graph as number).toBeLessThan(199);
    expect(threshold).toBeGreaterThan((graph as number) / 2);
  });
});
