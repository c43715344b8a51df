// Noise calibration: the noise multiplier sigma for which `steps` steps of the Poisson-subsampled
// Gaussian at sampling rate q reach a target (epsilon, delta). epsilon(sigma) is continuous and
// decreasing, so bisection on sigma brackets the target: the returned sigma is the upper end of the
// final bracket, so its epsilon is <= target, and the bracket is narrowed until epsilon >= target - tolerance.
import type { AccountantKind } from './accountant.ts';
import { epsilonOfSigma } from './calibration-epsilon.ts';
import { memoisedCalibration } from './calibration-memo.ts';
import { validateDelta, validateMechanismEvent } from './mechanism-event.ts';

export interface CalibrationRequest {
  targetEpsilon: number;
  delta: number;
  sampleRate: number;
  steps: number;
  accountant?: AccountantKind;
  /** How far below the target the returned epsilon may be; default 0.01. */
  tolerance?: number;
}

const SIGMA_MIN = 1e-3;
const SIGMA_MAX = 1e4;

export function calibrateNoiseMultiplier(o: CalibrationRequest): { noiseMultiplier: number; epsilon: number } {
  if (typeof o.targetEpsilon !== 'number' || !Number.isFinite(o.targetEpsilon) || o.targetEpsilon <= 0) {
    throw new Error(`calibrate: targetEpsilon must be a finite number > 0, got ${o.targetEpsilon}`);
  }
  validateDelta(o.delta);
  validateMechanismEvent({ sampleRate: o.sampleRate, noiseMultiplier: 1, steps: o.steps });
  const tolerance = o.tolerance ?? 0.01;
  if (typeof tolerance !== 'number' || !Number.isFinite(tolerance) || tolerance <= 0) throw new Error(`calibrate: tolerance must be a finite number > 0, got ${tolerance}`);
  const request = { targetEpsilon: o.targetEpsilon, delta: o.delta, sampleRate: o.sampleRate, steps: o.steps, accountant: o.accountant ?? 'rdp', tolerance };
  return memoisedCalibration('noise-multiplier', request, () => bisect(request));
}

function bisect(o: Required<CalibrationRequest>, windowed = true): { noiseMultiplier: number; epsilon: number } {
  const { tolerance } = o;
  const search = epsilonOfSigma(o.accountant, (sigma) => [{ sampleRate: o.sampleRate, noiseMultiplier: sigma, steps: o.steps }], o.delta, windowed);

  // Bracket: hi has epsilon <= target, lo has epsilon > target (each value here is exact: outside the known range).
  let hi = 1;
  let epsHi = search.at(hi);
  while (epsHi > o.targetEpsilon) {
    if (hi >= SIGMA_MAX) {
      throw new Error(`calibrate: target epsilon ${o.targetEpsilon} is unreachable at delta ${o.delta}: even noise multiplier ${SIGMA_MAX} gives epsilon ${epsHi} (${o.accountant} accountant)`);
    }
    hi = Math.min(SIGMA_MAX, hi * 2);
    epsHi = search.at(hi);
  }
  let lo = hi / 2;
  let epsLo = search.at(lo);
  while (epsLo <= o.targetEpsilon) {
    if (epsLo >= o.targetEpsilon - tolerance) return { noiseMultiplier: lo, epsilon: epsLo };
    if (lo <= SIGMA_MIN) {
      throw new Error(
        `calibrate: target epsilon ${o.targetEpsilon} is not reached from below: even noise multiplier ${SIGMA_MIN} gives only epsilon ${epsLo}; any noise multiplier >= ${SIGMA_MIN} meets the budget`,
      );
    }
    hi = lo;
    epsHi = epsLo;
    lo = Math.max(SIGMA_MIN, lo / 2);
    epsLo = search.at(lo);
  }
  // Bisection; inside the bracket search.at() may read high (calibration-epsilon.ts): an upper end it accepts
  // is exact-safe, the stopping test is made on the exact figure, and the final lower end is confirmed.
  let loFromWindow = false;
  for (let iteration = 0; ; iteration++) {
    if (epsHi >= o.targetEpsilon - tolerance) {
      epsHi = search.exact(hi);
      if (epsHi >= o.targetEpsilon - tolerance) break;
    }
    if (iteration > 200) throw new Error(`calibrate: bisection did not converge (sigma in [${lo}, ${hi}])`);
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    const epsMid = search.at(mid);
    if (epsMid <= o.targetEpsilon) {
      hi = mid;
      epsHi = epsMid;
    } else {
      lo = mid;
      loFromWindow = true;
    }
  }
  if (loFromWindow && search.exact(lo) <= o.targetEpsilon) return bisect(o, false);
  return { noiseMultiplier: hi, epsilon: search.exact(hi) };
}
