// The privacy layer around every training release: one place that decides, for a privacy mode and an
// aggregation, how an institution's update is bounded, where its noise is added, who takes part, how the
// updates are weighted, what the sum is divided by, and what privacy event each revealed sum is.
// The coordinator's round machine and the institution's client both ask this layer instead of branching on
// the mode strings themselves, so the two sides cannot disagree. Like a differentially private aggregator
// composed around a plain sum, the layer leaves the sum itself (plain, SecAgg, CKKS) to the aggregators.
//
// The pairs:
//   off    × plain|secagg|ckks  no privacy claim; updates still bounded (--max-update-norm) and weights capped.
//   record × plain|secagg|ckks  DP-SGD at each institution with the plan's public q and step count; the
//                               noise is added inside the institution before anything leaves it.
//   client × secagg|ckks        DP-FedAvg with distributed noise: every institution offered the round adds its
//                               share (discrete Gaussian) before masking or encryption; each decides by a
//                               secret coin whether its clipped update or a zero (cover) update goes under it.
//   client × plain              refused at startup (see releasePairRefusal).
// A release is a training update today; an evaluation release (score histograms) is meant to join as a
// second ReleasePolicy kind with its own noise placement and event.
import { randomBytes } from 'node:crypto';
import type { AggregationMode, PrivacyMode, TaskConfig } from '@dpfed/proto/task-config';
import { calibrateNoiseMultiplier } from './calibrate.ts';

export type ReleaseKind = 'training' | 'evaluation';

/** Where the noise of a release is added. Never by the coordinator. */
export type NoisePlacement = 'none' | 'local-dp-sgd' | 'distributed-share';

/** Who decides that an institution's data is in a round's sum. */
export type Participation = 'every-offered' | 'secret-coin';

/** The mechanism one revealed sum is, for the ledger of the federation (client-level DP). */
export interface SumEvent {
  sampleRate: number;
  noiseMultiplier: number;
  steps: number;
  clipNorm: number;
  delta: number;
}

export interface ReleasePolicy {
  readonly kind: ReleaseKind;
  readonly mode: PrivacyMode;
  readonly aggregation: AggregationMode;
  readonly noise: NoisePlacement;
  readonly participation: Participation;
  /** L2 bound of one institution's update: it clips to it before release; the coordinator enforces it where it can see the update. */
  readonly updateBound: number;
  /** The coordinator sees individual updates (plain aggregation) and clips any above the bound; otherwise only the institution can. */
  readonly coordinatorClips: boolean;
  /**
   * An update's weight from the public size its institution declared (null: none): the declared size
   * capped at the plan's public cap, 1 when none is declared, 1 for everyone under client-level DP. Both
   * sides compute it: the institution for its secure or encrypted update, the coordinator for plain ones.
   */
  weightOf(declared: number | null): number;
  /** What the weighted sum of the survivors is divided by: their total weight, or under client-level DP the expected participants q·offered. */
  divisor(totalWeight: number, offered: number): number;
  /** Standard deviation (update units) of the noise share each of `offered` institutions adds; 0 without distributed noise. */
  noiseShareStd(offered: number): number;
  /**
   * The noise multiplier actually present in a sum of `survivors` of `offered` institutions' real-valued
   * (CKKS) updates: each added variance (zS)²/offered. SecAgg's integer noise is accounted by
   * privacy/distributed-noise.ts instead. 0 without distributed noise.
   */
  realNoiseMultiplier(survivors: number, offered: number): number;
  /** The event a revealed sum is (client-level DP), given the noise multiplier actually present; null when the institutions account their own releases. */
  sumEvent(actualNoiseMultiplier: number): SumEvent | null;
}

/** Why a (privacy, aggregation) pair cannot run, naming the flags; null when it is supported. */
export function releasePairRefusal(mode: PrivacyMode, aggregation: AggregationMode): string | null {
  if (mode !== 'client') return null;
  if (aggregation === 'plain') {
    return (
      "--privacy client cannot run with --aggregation plain: the coordinator would see each institution's update and who took part, " +
      'so neither the noise shares nor the secret participation coins would protect anyone; use --aggregation secagg or ckks'
    );
  }
  return null;
}

/** The noise multiplier z for which `plannedRounds` client-level rounds at sampling rate q compose to (ε, δ). */
export function calibrateClientNoise(o: { targetEpsilon: number; delta: number; clientSampleRate: number; plannedRounds: number; accountant: 'rdp' | 'pld' }): number {
  return calibrateNoiseMultiplier({
    targetEpsilon: o.targetEpsilon,
    delta: o.delta,
    sampleRate: o.clientSampleRate,
    steps: o.plannedRounds,
    accountant: o.accountant,
  }).noiseMultiplier;
}

/** One secret Bernoulli(q) coin from node:crypto: 53 uniform bits compared with q. */
export function participationCoin(q: number): boolean {
  if (!(q > 0 && q <= 1)) throw new Error(`participation coin: q must be in (0, 1], got ${q}`);
  const bits = randomBytes(8).readBigUInt64BE() >> 11n;
  return Number(bits) / 2 ** 53 < q;
}

function cappedDeclared(declared: number | null, cap: number): number {
  return declared !== null && Number.isFinite(declared) && declared >= 1 ? Math.min(Math.floor(declared), cap) : 1;
}

export type ReleaseTask = Pick<TaskConfig, 'privacy' | 'aggregation' | 'maxUpdateNorm' | 'weightCap' | 'weighting'>;

/** The policy of a training release under `task` (throws the refusal of an unsupported pair). */
export function trainingReleasePolicy(task: ReleaseTask): ReleasePolicy {
  const { mode } = task.privacy;
  const aggregation = task.aggregation;
  const refusal = releasePairRefusal(mode, aggregation);
  if (refusal) throw new Error(refusal);
  const base = {
    kind: 'training' as const,
    mode,
    aggregation,
    coordinatorClips: aggregation === 'plain',
  };
  if (mode === 'client') {
    const c = task.privacy.client;
    if (!c) throw new Error('release policy: privacy.client is required in client mode');
    return {
      ...base,
      noise: 'distributed-share',
      participation: 'secret-coin',
      // The clip norm S is the sensitivity of the sum: the bound is S, whatever --max-update-norm says.
      updateBound: c.updateClipNorm,
      weightOf: () => 1,
      divisor: (_totalWeight, offered) => c.clientSampleRate * offered,
      noiseShareStd: (offered) => (c.noiseMultiplier * c.updateClipNorm) / Math.sqrt(offered),
      realNoiseMultiplier: (survivors, offered) => c.noiseMultiplier * Math.sqrt(survivors / offered),
      sumEvent: (actual) => ({ sampleRate: c.clientSampleRate, noiseMultiplier: actual, steps: 1, clipNorm: c.updateClipNorm, delta: c.delta }),
    };
  }
  return {
    ...base,
    noise: mode === 'record' ? 'local-dp-sgd' : 'none',
    participation: 'every-offered',
    updateBound: task.maxUpdateNorm,
    weightOf: (declared) => (task.weighting === 'uniform' ? 1 : cappedDeclared(declared, task.weightCap)),
    divisor: (totalWeight) => totalWeight,
    noiseShareStd: () => 0,
    realNoiseMultiplier: () => 0,
    sumEvent: () => null,
  };
}

/**
 * The default --max-update-norm outside client mode: the farthest `steps` optimiser steps of size
 * `learningRate` per coordinate can move `parameters` values (Adam's step is about the learning rate per
 * coordinate), i.e. learningRate · steps · √parameters. An honest update stays within it; a larger one is clipped.
 */
export function defaultUpdateBound(learningRate: number, steps: number, parameters: number): number {
  return learningRate * steps * Math.sqrt(parameters);
}
