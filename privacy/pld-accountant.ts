// Privacy-loss-distribution (PLD) accountant for the Poisson-subsampled Gaussian (add/remove neighbours).
//
// For a pair (P, Q) the privacy curve is delta(eps) = E_{Y~P}[(1 - e^{eps - Y})_+] with Y = log(P/Q) the
// privacy loss; losses of independent steps add, so composition is convolution of loss distributions.
// Both neighbouring directions are accounted separately and the larger epsilon is reported:
//   remove: P = (1-q) N(0,s^2) + q N(1,s^2), Q = N(0,s^2);   add: P = N(0,s^2), Q = the mixture.
// Each direction's exact single-step curve delta(eps) has a closed form through Gaussian tails.
//
// Discretisation, pessimistic ("connect the dots", Doroshenko et al. 2022): on the loss grid y_k = k*h,
// the curve delta as a function of x = e^eps is convex, so the piecewise-linear interpolation through
// the exact points (x_k, delta(y_k)), extended by the chord to (0, 1) on the left and by a constant
// (an atom at +infinity carrying delta(y_max)) on the right, lies above the exact curve everywhere. It is
// itself the privacy curve of a discrete pair whose P-masses are p_k = x_k * (slope_k - slope_{k-1});
// that pair dominates the true one, and domination survives composition, so every delta computed from
// it is an upper bound. Tiny negative masses from rounding are raised to 0 (only raises delta).
// The discretisation error does not grow like steps * h, unlike rounding each loss up.
//
// Composition: FFT of each event's masses on a cyclic grid of N points, raised to the event's step
// count in the frequency domain, multiplied across events, inverse FFT. When the composed support is
// wider than N, the window is centred on the mean loss (+-12 standard deviations); the mass above the
// window (which would wrap round to low losses) is bounded by a Chernoff bound from the discretised
// masses and added to delta; mass below it wraps to high losses, which only raises delta. A slack of
// N * 1e-15 covers FFT rounding. Epsilon at delta is found exactly on the piecewise curve.
import type { Accountant } from './accountant.ts';
import { validateDelta, validateMechanismEvent, type MechanismEvent } from './mechanism-event.ts';
import { logErfc } from './rdp-accountant.ts';

type Direction = 'remove' | 'add';

/** Gaussian survival P(N(0,1) > x) and CDF, accurate in the tails. */
const survival = (x: number) => 0.5 * Math.exp(logErfc(x / Math.SQRT2));
const cdf = (x: number) => 0.5 * Math.exp(logErfc(-x / Math.SQRT2));

/** Exact single-step privacy curve of one direction. */
function exactDelta(direction: Direction, q: number, sigma: number, eps: number): number {
  const x = Math.exp(direction === 'remove' ? eps : -eps);
  // Loss boundary z with log(1-q + q e^{(2z-1)/(2s^2)}) = log x (none when x <= 1-q).
  const z = x > 1 - q ? sigma * sigma * Math.log((x - (1 - q)) / q) + 0.5 : -Infinity;
  if (direction === 'remove') {
    if (z === -Infinity) return 1 - Math.exp(eps);
    return Math.max(0, (1 - q) * survival(z / sigma) + q * survival((z - 1) / sigma) - Math.exp(eps) * survival(z / sigma));
  }
  if (z === -Infinity) return 0;
  const e = Math.exp(eps);
  return Math.max(0, cdf(z / sigma) - e * ((1 - q) * cdf(z / sigma) + q * cdf((z - 1) / sigma)));
}

/** Privacy loss log(mu(z)/mu0(z)) of the remove direction at z (the add direction's is its negative at the same z). */
function lossAt(q: number, sigma: number, z: number): number {
  const u = (2 * z - 1) / (2 * sigma * sigma);
  if (q === 1) return u;
  const a = Math.log1p(-q);
  const b = Math.log(q) + u;
  const m = Math.max(a, b);
  return m + Math.log1p(Math.exp(-Math.abs(a - b)));
}

interface DiscretePld {
  /** Grid index of masses[0]: its loss is first * h. */
  first: number;
  masses: Float64Array;
  infinityMass: number;
}

function discretise(direction: Direction, q: number, sigma: number, h: number, tail: number): DiscretePld {
  const c = Math.sqrt(2 * Math.log(1 / tail)); // P(N(0,1) > c) <= tail
  let lowLoss: number;
  let highLoss: number;
  if (direction === 'remove') {
    lowLoss = lossAt(q, sigma, -sigma * c);
    highLoss = lossAt(q, sigma, 1 + sigma * c);
  } else {
    lowLoss = -lossAt(q, sigma, sigma * c);
    highLoss = -lossAt(q, sigma, -sigma * c - 1);
  }
  const first = Math.floor(lowLoss / h);
  const last = Math.ceil(highLoss / h);
  const n = last - first + 1;
  if (n > 1 << 22) throw new Error(`PLD: loss range too wide at discretisation ${h} (noise multiplier ${sigma} is very small)`);
  const deltas = new Float64Array(n);
  const xs = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const y = (first + k) * h;
    xs[k] = Math.exp(y);
    deltas[k] = exactDelta(direction, q, sigma, y);
  }
  const masses = new Float64Array(n);
  let previousSlope = (deltas[0] - 1) / xs[0]; // chord from (0, 1)
  for (let k = 0; k < n; k++) {
    const slope = k + 1 < n ? (deltas[k + 1] - deltas[k]) / (xs[k + 1] - xs[k]) : 0;
    masses[k] = Math.max(0, xs[k] * (slope - previousSlope));
    previousSlope = slope;
  }
  return { first, masses, infinityMass: deltas[n - 1] };
}

/** In-place iterative radix-2 FFT; inverse when `inverse` (unscaled). */
function fft(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      let t = re[i];
      re[i] = re[j];
      re[j] = t;
      t = im[i];
      im[i] = im[j];
      im[j] = t;
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const half = size >> 1;
    const angle = ((inverse ? 2 : -2) * Math.PI) / size;
    const wr = new Float64Array(half);
    const wi = new Float64Array(half);
    for (let k = 0; k < half; k++) {
      wr[k] = Math.cos(angle * k);
      wi[k] = Math.sin(angle * k);
    }
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < half; k++) {
        const a = start + k;
        const b = a + half;
        const tr = re[b] * wr[k] - im[b] * wi[k];
        const ti = re[b] * wi[k] + im[b] * wr[k];
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
      }
    }
  }
}

function logMoment(pld: DiscretePld, h: number, lambda: number): number {
  let m = -Infinity;
  const { masses, first } = pld;
  for (let k = 0; k < masses.length; k++) if (masses[k] > 0) m = Math.max(m, Math.log(masses[k]) + lambda * (first + k) * h);
  let s = 0;
  for (let k = 0; k < masses.length; k++) if (masses[k] > 0) s += Math.exp(Math.log(masses[k]) + lambda * (first + k) * h - m);
  return m + Math.log(s);
}

interface Composed {
  /** Loss of masses[0] is lowest * h; masses are in increasing loss order. */
  lowest: number;
  masses: Float64Array;
  /** Mass that must be counted as infinite loss: atoms at infinity, the bound on wrapped upper tail, FFT slack. */
  extra: number;
}

const MAX_POINTS = 1 << 22;

function compose(parts: { pld: DiscretePld; steps: number }[], h: number): Composed {
  let lowestIndex = 0;
  let highestIndex = 0;
  let mean = 0;
  let variance = 0;
  let noInfinity = 1;
  for (const { pld, steps } of parts) {
    lowestIndex += steps * pld.first;
    highestIndex += steps * (pld.first + pld.masses.length - 1);
    let m0 = 0;
    let m1 = 0;
    let m2 = 0;
    pld.masses.forEach((p, k) => {
      const y = (pld.first + k) * h;
      m0 += p;
      m1 += p * y;
      m2 += p * y * y;
    });
    const mu = m1 / m0;
    mean += steps * mu;
    variance += steps * Math.max(0, m2 / m0 - mu * mu);
    noInfinity *= Math.pow(1 - pld.infinityMass, steps);
  }
  const fullWidth = highestIndex - lowestIndex + 1;
  const longest = Math.max(...parts.map((p) => p.pld.masses.length));
  const windowWidth = Math.ceil((24 * Math.sqrt(variance) + 2) / h);
  let size = 1;
  while (size < Math.max(longest, Math.min(fullWidth, windowWidth))) size <<= 1;
  if (size > MAX_POINTS) throw new Error(`PLD: ${size} grid points needed at discretisation ${h}`);
  let low = lowestIndex;
  let upperTail = 0;
  if (fullWidth > size) {
    low = Math.max(lowestIndex, Math.round(mean / h) - size / 2);
    // Chernoff: P(S >= a) <= exp(-lambda a + sum steps * log M(lambda)), minimised over a lambda grid.
    const a = (low + size) * h;
    let best = 0;
    for (let e = -8; e <= 10; e++) {
      const lambda = 2 ** e;
      let exponent = -lambda * a;
      for (const { pld, steps } of parts) exponent += steps * logMoment(pld, h, lambda);
      best = Math.min(best, exponent);
    }
    upperTail = Math.exp(best);
  }
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  const accRe = new Float64Array(size).fill(1);
  const accIm = new Float64Array(size);
  for (const { pld, steps } of parts) {
    re.fill(0);
    im.fill(0);
    pld.masses.forEach((p, k) => {
      const index = (((pld.first + k) % size) + size) % size;
      re[index] += p;
    });
    fft(re, im, false);
    for (let i = 0; i < size; i++) {
      // (r e^{i theta})^steps in polar form
      const r = Math.hypot(re[i], im[i]);
      const theta = Math.atan2(im[i], re[i]);
      const rT = r === 0 ? 0 : Math.exp(steps * Math.log(r));
      const pr = rT * Math.cos(steps * theta);
      const pi = rT * Math.sin(steps * theta);
      const nr = accRe[i] * pr - accIm[i] * pi;
      accIm[i] = accRe[i] * pi + accIm[i] * pr;
      accRe[i] = nr;
    }
  }
  fft(accRe, accIm, true);
  const masses = new Float64Array(size);
  const start = ((low % size) + size) % size;
  for (let r = 0; r < size; r++) masses[r] = Math.max(0, accRe[(start + r) % size] / size);
  return { lowest: low, masses, extra: 1 - noInfinity + upperTail + size * 1e-15 };
}

/** Smallest eps >= 0 with delta(eps) <= delta on the composed discrete curve. */
function epsilonOf(composed: Composed, h: number, delta: number): number {
  const { lowest, masses, extra } = composed;
  if (extra >= delta) return Infinity;
  let A = 0; // sum of masses above eps
  let B = 0; // sum of masses * e^{-y} above eps
  for (let r = masses.length - 1; r >= 0; r--) {
    const y = (lowest + r) * h;
    if (y <= 0) break;
    A += masses[r];
    B += masses[r] * Math.exp(-y);
    const below = Math.max(0, (lowest + r - 1) * h);
    // On (below, y]: delta(eps) = A - e^eps B + extra.
    if (A - Math.exp(below) * B + extra > delta) return Math.max(below, Math.log((A + extra - delta) / B));
  }
  return 0;
}

/** Standard deviation of one step's privacy loss (remove direction, under the mixture), by quadrature. */
function lossStd(q: number, sigma: number): number {
  const n = 4000;
  const lo = -10 * sigma;
  const hi = 1 + 10 * sigma;
  const dz = (hi - lo) / n;
  let m0 = 0;
  let m1 = 0;
  let m2 = 0;
  for (let i = 0; i <= n; i++) {
    const z = lo + i * dz;
    const density = (1 - q) * Math.exp(-(z * z) / (2 * sigma * sigma)) + q * Math.exp(-((z - 1) * (z - 1)) / (2 * sigma * sigma));
    const y = lossAt(q, sigma, z);
    m0 += density;
    m1 += density * y;
    m2 += density * y * y;
  }
  const mean = m1 / m0;
  return Math.sqrt(Math.max(0, m2 / m0 - mean * mean));
}

/** delta(eps) on the composed discrete curve. */
function deltaOf(composed: Composed, h: number, eps: number): number {
  let total = composed.extra;
  for (let r = composed.masses.length - 1; r >= 0; r--) {
    const y = (composed.lowest + r) * h;
    if (y <= eps) break;
    total += composed.masses[r] * -Math.expm1(eps - y);
  }
  return total;
}

export interface PldOptions {
  /**
   * Loss grid step h. Default: adaptive, 1/50 of the smallest single-step loss standard deviation among
   * the events, within [1e-6, 2e-3] (coarsened automatically when the grid would be too large).
   */
  discretisation?: number;
}

export class PldAccountant implements Accountant {
  readonly kind = 'pld' as const;
  private readonly h: number | undefined;

  constructor(options: PldOptions = {}) {
    const h = options.discretisation;
    if (h !== undefined && (!Number.isFinite(h) || h <= 0)) throw new Error(`PLD: discretisation must be a positive number, got ${h}`);
    this.h = h;
  }

  /** The composed discrete curve of each direction for a history (merged by mechanism). */
  private curves(events: readonly MechanismEvent[], tail: number): { composed: Composed; h: number }[] {
    if (!Array.isArray(events)) throw new Error('PLD: events must be an array');
    events.forEach((e, i) => validateMechanismEvent(e, i));
    const merged = new Map<string, MechanismEvent>();
    for (const e of events) {
      const key = `${e.sampleRate}:${e.noiseMultiplier}`;
      const seen = merged.get(key);
      merged.set(key, seen ? { ...seen, steps: seen.steps + e.steps } : { ...e });
    }
    const totalSteps = events.reduce((n, e) => n + e.steps, 0);
    const perStepTail = tail / totalSteps;
    const initialH = this.h ?? Math.min(2e-3, Math.max(1e-6, Math.min(...[...merged.values()].map((e) => lossStd(e.sampleRate, e.noiseMultiplier))) / 50));
    const out: { composed: Composed; h: number }[] = [];
    for (const direction of ['remove', 'add'] as const) {
      let h = initialH;
      for (;;) {
        try {
          const parts = [...merged.values()].map((e) => ({ pld: discretise(direction, e.sampleRate, e.noiseMultiplier, h, perStepTail), steps: e.steps }));
          out.push({ composed: compose(parts, h), h });
          break;
        } catch (error) {
          if (!/grid points needed|loss range too wide/.test((error as Error).message) || h > 0.05) throw error;
          h *= 2;
        }
      }
    }
    return out;
  }

  epsilon(events: readonly MechanismEvent[], delta: number): { epsilon: number } {
    validateDelta(delta);
    if (Array.isArray(events) && events.length === 0) return { epsilon: 0 };
    const curves = this.curves(events, Math.min(1e-12, delta * 1e-4));
    return { epsilon: Math.max(...curves.map(({ composed, h }) => epsilonOf(composed, h, delta))) };
  }

  /** An upper bound on delta at `epsilon` for the composed history (the larger of both directions). */
  delta(events: readonly MechanismEvent[], epsilon: number): number {
    if (typeof epsilon !== 'number' || Number.isNaN(epsilon) || epsilon < 0) throw new Error(`epsilon must be a number >= 0, got ${epsilon}`);
    if (Array.isArray(events) && events.length === 0) return 0;
    const curves = this.curves(events, 1e-14);
    return Math.min(1, Math.max(...curves.map(({ composed, h }) => deltaOf(composed, h, epsilon))));
  }
}
