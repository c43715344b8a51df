// How an update travels through the secure sum: the quantisation every participant uses, and, under
// client-level DP, the integer noise each adds so that the expected survivors' noises sum to z·S.
import { maxScaleForNoise, perClientNoiseSigma } from '@dpfed/privacy/distributed-noise';
import { chooseQuantisation, noiseTailBound, type QuantisationConfig } from '@dpfed/privacy/quantise';
import type { ReleasePolicy } from '@dpfed/privacy/release-policy';

/** Per-coordinate range of a weighted update delta before quantisation (larger values are clipped). */
export const UPDATE_CLIP_RANGE = 8;
/** Upper limit of the public weight cap (example counts above the cap are capped). */
export const MAX_WEIGHT_CAP = 1 << 24;

/**
 * The cap of the weight coordinate: the next power of two above the largest weight of the participants
 * (their declared sizes, already capped by the plan's public cap, or 1). A tight cap keeps the
 * quantisation error of Σ w·x small (at most n · cap / scale per coordinate).
 */
export function weightCapFor(weights: readonly number[]): number {
  const largest = Math.max(1, ...weights.filter((c) => Number.isFinite(c)));
  return Math.min(MAX_WEIGHT_CAP, 2 ** Math.ceil(Math.log2(largest)));
}

export interface SecureUpdatePlan {
  quantisation: QuantisationConfig;
  /** Integer noise std each client adds (quantised units); 0 without client-level DP. */
  clientNoiseSigma: number;
  /** Tail bound of the summed noise, for the wrap-around check when decoding. */
  noiseTail: number;
}

/** `weights`: the release policy's weight of each participant offered the secure sum. */
export function planSecureUpdate(policy: ReleasePolicy, weights: readonly number[]): SecureUpdatePlan {
  const participants = weights.length;
  if (policy.noise !== 'distributed-share') {
    return { quantisation: chooseQuantisation(UPDATE_CLIP_RANGE, participants, 0, { weightCap: weightCapFor(weights) }), clientNoiseSigma: 0, noiseTail: 0 };
  }
  const S = policy.updateBound;
  const targetStd = policy.noiseShareStd(participants) * Math.sqrt(participants); // z·S, update units, for the whole sum
  const perClientStd = targetStd / Math.sqrt(participants);
  const quantisation = chooseQuantisation(S, participants, targetStd, { weightCap: 1, maxScale: maxScaleForNoise(perClientStd) });
  const clientNoiseSigma = perClientNoiseSigma(targetStd * quantisation.scale, participants);
  return { quantisation, clientNoiseSigma, noiseTail: noiseTailBound(targetStd * quantisation.scale) };
}
