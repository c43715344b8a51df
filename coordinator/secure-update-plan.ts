// How an update travels through the secure sum: the quantisation every participant uses, and, under
// client-level DP, the integer noise each adds so that the expected survivors' noises sum to z·S.
import { maxScaleForNoise, perClientNoiseSigma } from '../privacy/distributed-noise.ts';
import { chooseQuantisation, noiseTailBound, type QuantisationConfig } from '../privacy/quantise.ts';
import type { RunConfig } from './run-config.ts';

/** Per-coordinate range of a weighted update delta before quantisation (larger values are clipped). */
export const UPDATE_CLIP_RANGE = 8;
/** Upper limit of the public weight cap (example counts above the cap are capped). */
export const MAX_WEIGHT_CAP = 1 << 24;

/**
 * The public cap on example counts: the next power of two above the largest count the participants
 * declared when they registered. A tight cap keeps the quantisation error of Σ w·x small
 * (at most n · cap / scale per coordinate).
 */
export function weightCapFor(declaredCounts: readonly number[]): number {
  const largest = Math.max(1, ...declaredCounts.filter((c) => Number.isFinite(c)));
  return Math.min(MAX_WEIGHT_CAP, 2 ** Math.ceil(Math.log2(largest)));
}

export interface SecureUpdatePlan {
  quantisation: QuantisationConfig;
  /** Integer noise std each client adds (quantised units); 0 without client-level DP. */
  clientNoiseSigma: number;
  /** Tail bound of the summed noise, for the wrap-around check when decoding. */
  noiseTail: number;
}

export function planSecureUpdate(config: RunConfig, declaredCounts: readonly number[]): SecureUpdatePlan {
  const participants = declaredCounts.length;
  const client = config.task.privacy.mode === 'client' ? config.task.privacy.client : undefined;
  if (!client) {
    return { quantisation: chooseQuantisation(UPDATE_CLIP_RANGE, participants, 0, { weightCap: weightCapFor(declaredCounts) }), clientNoiseSigma: 0, noiseTail: 0 };
  }
  const S = client.updateClipNorm;
  const targetStd = client.noiseMultiplier * S; // update units, for the whole sum
  const perClientStd = targetStd / Math.sqrt(participants);
  const quantisation = chooseQuantisation(S, participants, targetStd, { weightCap: 1, maxScale: maxScaleForNoise(perClientStd) });
  const clientNoiseSigma = perClientNoiseSigma(targetStd * quantisation.scale, participants);
  return { quantisation, clientNoiseSigma, noiseTail: noiseTailBound(targetStd * quantisation.scale) };
}
