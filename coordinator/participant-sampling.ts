// Who takes part in a round: how many live institutions a round waits for, and which of them it offers
// the round to. Pure functions of the run's settings and the live, admissible institutions; the seeded
// shuffle makes a run's cohorts reproducible from --seed.
import type { Participation } from '@dpfed/privacy/release-policy';
import { SeededRandom } from '@dpfed/proto/seeded-random';

export interface SamplingSettings {
  minClients: number;
  /** Institutions to wait for before the first round this coordinator runs (0 or absent: minClients). */
  waitFor?: number;
  /** Fraction of live institutions sampled (used when sampleCount is 0). */
  sampleFraction: number;
  /** Exact number sampled; 0: use sampleFraction. */
  sampleCount: number;
  seed: string;
}

/**
 * The live institutions a round waits for. The first round this coordinator process runs (a new run, or
 * one resumed after a restart) waits for --wait-for institutions, so the federation assembles before it
 * starts; later rounds need --min-clients.
 */
export function institutionsNeeded(settings: SamplingSettings, roundsRunBefore: number): number {
  return roundsRunBefore === 0 ? Math.max(settings.minClients, settings.waitFor ?? 0) : settings.minClients;
}

/**
 * The institutions a round is offered to, sorted by id then (when sampled) shuffled by the run's seed,
 * run id and round. Under secret-coin participation (client-level DP) the round is offered to every live
 * admissible institution: each joins by its own secret coin, so the recorded q is the true probability
 * whatever the cohort flags say. Otherwise max(minClients, the sample size) of them, at most all.
 */
export function sampleParticipants<T extends { id: string }>(live: readonly T[], o: { settings: SamplingSettings; participation: Participation; runId: string; round: number }): T[] {
  const sorted = [...live].sort((a, b) => a.id.localeCompare(b.id));
  if (o.participation === 'secret-coin') return sorted;
  const { settings } = o;
  const wanted = settings.sampleCount > 0 ? settings.sampleCount : Math.ceil(settings.sampleFraction * sorted.length);
  const k = Math.min(sorted.length, Math.max(settings.minClients, wanted));
  new SeededRandom(`${settings.seed}:sample:${o.runId}:${o.round}`).shuffle(sorted);
  return sorted.slice(0, k);
}

/**
 * Whether offering a round is already a release: under secret-coin participation every institution
 * offered the round adds (and records) its noisy share, so a failed round's number is not used again.
 */
export function offerIsRelease(participation: Participation): boolean {
  return participation === 'secret-coin';
}

/**
 * Sample: polls (every 20 ms) until at least `needed` live admissible institutions are there, then
 * returns them (for sampleParticipants); null when stopped first. Announces the wait once.
 */
export async function waitForLive<T>(o: { needed: number; live: () => T[]; stopped: () => boolean; onWaiting: (live: number) => void }): Promise<T[] | null> {
  let announced = false;
  while (!o.stopped()) {
    const live = o.live();
    if (live.length >= o.needed) return live;
    if (!announced) {
      o.onWaiting(live.length);
      announced = true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}
