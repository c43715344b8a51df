// Privacy-loss-distribution (PLD) accountant for the Poisson-subsampled Gaussian (add/remove neighbours),
// fenced by the RDP accountant: it reports min(PLD, RDP) and says which of the two it used.
//
// For a pair (P, Q) the privacy curve is delta(eps) = E_{Y~P}[(1 - e^{eps - Y})_+] with Y = log(P/Q) the
// privacy loss; losses of independent steps add, so composition is convolution of loss distributions.
// Both neighbouring directions are accounted separately and the larger epsilon is reported:
//   remove: P = (1-q) N(0,s^2) + q N(1,s^2), Q = N(0,s^2);   add: P = N(0,s^2), Q = the mixture.
// Each direction's exact single-step curve delta(eps) has a closed form through Gaussian tails. The
// remove direction's losses are >= log(1-q) and unbounded above; the add direction's are <= -log(1-q)
// and unbounded below.
//
// One step's discretisation (pessimistic, connect the dots): privacy/pld-step.ts.
//
// Grid and range, chosen from the parameters (as dp_accounting and the Opacus PRV accountant do, with
// their tail bounds replaced by ours):
//   - one step's grid (privacy/pld-step.ts) is cut at z = 1 + c*sigma, with c chosen so a Gaussian tail
//     beyond c is below the per-step share of the truncation budget (the mass above is charged);
//   - the composed distribution is computed on a window of N points: its top is U, where the RDP-derived
//     Chernoff bound P(sum >= U) <= exp(lambda (RDP_{lambda+1} - U)) falls below the window's share of the
//     budget; its bottom is the lowest loss the discrete masses can reach, or 16 of their standard
//     deviations below their mean when that is higher, and for the add direction (whose lower tail is
//     long: a rare example makes the loss very negative) no higher than the point where the Chernoff
//     bound P(sum <= b) <= exp(alpha b + (alpha - 1) RDP_alpha) reaches the same share;
//   - h = (U - bottom) / N with N = 2^14 (coarser only when one step's range would need more than 2^18
//     points), so the resolution follows the scale of the answer: a history of 20 steps and one of
//     100,000 steps both get 16k points across the range that matters.
// Composition: FFT of each event's masses on a cyclic grid of N points, raised to the event's step count
// in the frequency domain (polar form), multiplied across events, inverse FFT. Mass of the composed
// distribution below the window wraps round to high losses (that only raises delta); the mass above it
// would wrap to low losses, so it is bounded by a Chernoff bound computed from the discretised masses
// themselves and added to delta, as are the atoms at infinity (-expm1(sum T log1p(-atom)), no rounding
// to 0) and a slack of N * 1e-15 for FFT rounding. Epsilon at delta is found exactly on the piecewise
// curve. The truncations are sized to take about a thousandth of delta (the FFT slack comes on top);
// when the charges reach delta anyway, or the grid would be too large, the PLD figure is unbounded and
// the RDP figure is reported. On a sweep of q 1e-4..0.5, sigma 0.5..5, T 1..1e5, delta 1e-8..1e-3 the PLD
// figure is finite and below RDP wherever RDP's epsilon is below 100 (test/pld-grid.test.ts).
import type { Accountant } from './accountant.ts';
import { fft } from './fft.ts';
import { validateDelta, validateMechanismEvent, type MechanismEvent } from './mechanism-event.ts';
import { MAX_STEP_POINTS, PldGridError, discretise, gridMoments, stepMoments, stepRange, type DiscretePld } from './pld-step.ts';
import { DEFAULT_RDP_ORDERS, RdpAccountant } from './rdp-accountant.ts';

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

/** Points of the composed window (a power of two). */
const WINDOW_POINTS = 1 << 14;
/** Most points a window may take with a caller's fixed h. */
const MAX_POINTS = 1 << 20;

/**
 * Composes `parts` on a cyclic window of `size` points whose lowest index is at least `lowIndex` (see the
 * file header); `lambdas` are the Chernoff orders tried for the mass above the window.
 */
function compose(parts: { pld: DiscretePld; steps: number }[], h: number, lowIndex: number, size: number, lambdas: readonly number[]): Composed {
  let lowestIndex = 0;
  let highestIndex = 0;
  let logNoInfinity = 0;
  for (const { pld, steps } of parts) {
    lowestIndex += steps * pld.first;
    highestIndex += steps * (pld.first + pld.masses.length - 1);
    logNoInfinity += steps * Math.log1p(-Math.min(1, pld.infinityMass));
  }
  let low = lowestIndex;
  let upperTail = 0;
  if (highestIndex - lowestIndex + 1 > size) {
    low = Math.min(Math.max(lowestIndex, lowIndex), highestIndex - size + 1);
    if (low + size <= highestIndex) {
      // Chernoff: P(S >= a) <= exp(-lambda a + sum steps * log M(lambda)), the best of the orders tried.
      const a = (low + size) * h;
      let best = 0;
      for (const lambda of lambdas) {
        let exponent = -lambda * a;
        for (const { pld, steps } of parts) exponent += steps * logMoment(pld, h, lambda);
        best = Math.min(best, exponent);
      }
      upperTail = Math.exp(best);
    }
  }
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  const accRe = new Float64Array(size).fill(1);
  const accIm = new Float64Array(size);
  for (const { pld, steps } of parts) {
    re.fill(0);
    im.fill(0);
    const masses = pld.masses;
    for (let k = 0; k < masses.length; k++) {
      const index = (((pld.first + k) % size) + size) % size;
      re[index] += masses[k];
    }
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
  return { lowest: low, masses, extra: -Math.expm1(logNoInfinity) + upperTail + size * 1e-15 };
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
   * Loss grid step h. Default: chosen per history so that the composed window (see the file header) has
   * 2^14 points, coarser only when one step's range would need more than 2^18.
   */
  discretisation?: number;
}

/** Which bound an epsilon or delta came from: the PLD computation, or the RDP fence below it. */
export type PldMethod = 'pld' | 'rdp';

export interface PldEpsilon {
  epsilon: number;
  /** The RDP order, when the RDP fence gave the figure. */
  order?: number;
  method: PldMethod;
  /** The PLD computation's own figure (Infinity when it could not bound epsilon). */
  pldEpsilon: number;
}

/** The share of delta that the PLD computation's truncations may take (the rest is the curve's own). */
const TRUNCATION_SHARE = 1e-3;

export class PldAccountant implements Accountant {
  readonly kind = 'pld' as const;
  private readonly h: number | undefined;
  /** The fence, and the source of the Chernoff orders that place the window. */
  private readonly rdp = new RdpAccountant();

  constructor(options: PldOptions = {}) {
    const h = options.discretisation;
    if (h !== undefined && (!Number.isFinite(h) || h <= 0)) throw new Error(`PLD: discretisation must be a positive number, got ${h}`);
    this.h = h;
  }

  /**
   * The composed discrete curve of each direction for a history (merged by mechanism), with at most
   * `truncation` of probability charged to truncation (the window's wrap and the per-step cut, half each).
   */
  private curves(events: readonly MechanismEvent[], truncation: number): { composed: Composed; h: number }[] {
    const merged = new Map<string, MechanismEvent>();
    for (const e of events) {
      const key = `${e.sampleRate}:${e.noiseMultiplier}`;
      const seen = merged.get(key);
      merged.set(key, seen ? { ...seen, steps: seen.steps + e.steps } : { ...e });
    }
    const mechanisms = [...merged.values()];
    const totalSteps = mechanisms.reduce((n, e) => n + e.steps, 0);
    const perStepTail = truncation / 2 / totalSteps;
    const c = Math.sqrt(2 * Math.log(1 / perStepTail)); // P(N(0,1) > c) <= perStepTail
    // The window's top: min over orders of RDP + log(1/tail)/(alpha - 1), a Chernoff bound for the
    // composed loss under P in both directions (the remove direction's moments dominate the add one's).
    const rdp = this.rdp.rdp(mechanisms);
    const windowTail = Math.log(2 / truncation);
    let top = Infinity;
    let bestLambda = 1;
    DEFAULT_RDP_ORDERS.forEach((alpha, k) => {
      const a = rdp[k] + windowTail / (alpha - 1);
      if (a < top) {
        top = a;
        bestLambda = alpha - 1;
      }
    });
    const lambdas = [0.25, 0.5, 1, 2, 4].map((f) => f * bestLambda);
    // The add direction's window bottom: its loss is log(N0 / mixture), so E[e^{-alpha S}] =
    // exp((alpha - 1) RDP_alpha) and P(S <= b) <= exp(alpha b + (alpha - 1) RDP_alpha). Its lower tail is
    // long (a rare example makes the loss very negative); mass below the window would wrap round to the top.
    let addBottom = -Infinity;
    DEFAULT_RDP_ORDERS.forEach((alpha, k) => {
      addBottom = Math.max(addBottom, -((alpha - 1) * rdp[k] + windowTail) / alpha);
    });
    const out: { composed: Composed; h: number }[] = [];
    for (const direction of ['remove', 'add'] as const) {
      let lowest = 0;
      let highest = 0;
      let mean = 0;
      let variance = 0;
      let widestStep = 0;
      const ranges = mechanisms.map((e) => {
        const range = stepRange(direction, e.sampleRate, e.noiseMultiplier, c);
        const moments = stepMoments(direction, e.sampleRate, e.noiseMultiplier);
        lowest += e.steps * range.low;
        highest += e.steps * range.high;
        mean += e.steps * moments.mean;
        variance += e.steps * moments.variance;
        widestStep = Math.max(widestStep, range.high - range.low);
        return range;
      });
      const windowLow = Math.max(lowest, direction === 'add' ? Math.min(addBottom, mean - 16 * Math.sqrt(variance)) : mean - 16 * Math.sqrt(variance));
      const windowHigh = Math.max(windowLow + widestStep * 1e-6, Math.min(top, highest));
      const h = this.h ?? Math.max((windowHigh - windowLow) / (WINDOW_POINTS - 4), widestStep / (MAX_STEP_POINTS - 4));
      const parts = mechanisms.map((e, i) => ({
        pld: discretise(direction, e.sampleRate, e.noiseMultiplier, h, Math.floor(ranges[i].low / h), Math.ceil(ranges[i].high / h)),
        steps: e.steps,
      }));
      // The grid's rounding outwards can raise the composed top above the continuous one: the window
      // reaches the discrete top when the Chernoff top is not lower.
      // The window's bottom from the discrete masses' own moments (the grid's outward rounding can put a
      // step's lowest mass up to h below the continuous minimum, which adds up over the steps).
      let discreteTop = 0;
      let discreteBottom = 0;
      let discreteMean = 0;
      let discreteVariance = 0;
      for (const { pld, steps } of parts) {
        discreteTop += steps * (pld.first + pld.masses.length - 1);
        discreteBottom += steps * pld.first;
        const m = gridMoments(pld);
        discreteMean += steps * m.mean;
        discreteVariance += steps * m.variance;
      }
      const spread = discreteMean - 16 * Math.sqrt(discreteVariance);
      const bottom = Math.max(discreteBottom, Math.floor(direction === 'add' ? Math.min(addBottom, spread * h) / h : spread));
      const windowTop = Math.max(bottom + 1, Math.min(Math.ceil(top / h), discreteTop));
      let size = 2;
      while (size < windowTop - bottom + 2) size <<= 1;
      if (size > MAX_POINTS) throw new PldGridError(`PLD: ${size} grid points needed at discretisation ${h}`);
      out.push({ composed: compose(parts, h, bottom, size, lambdas), h });
    }
    return out;
  }

  /** The PLD computation alone (no fence): Infinity when its truncation charges reach delta or its grid would be too large. */
  pldEpsilon(events: readonly MechanismEvent[], delta: number): number {
    validateDelta(delta);
    if (!Array.isArray(events)) throw new Error('PLD: events must be an array');
    events.forEach((e, i) => validateMechanismEvent(e, i));
    if (events.length === 0) return 0;
    try {
      const curves = this.curves(events, delta * TRUNCATION_SHARE);
      return Math.max(...curves.map(({ composed, h }) => epsilonOf(composed, h, delta)));
    } catch (error) {
      if (error instanceof PldGridError) return Infinity;
      throw error;
    }
  }

  /** min(PLD, RDP) at delta, and which of the two it is. */
  epsilon(events: readonly MechanismEvent[], delta: number): PldEpsilon {
    const pld = this.pldEpsilon(events, delta);
    if (events.length === 0) return { epsilon: 0, method: 'pld', pldEpsilon: 0 };
    const rdp = this.rdp.epsilon(events, delta);
    if (pld <= rdp.epsilon) return { epsilon: pld, method: 'pld', pldEpsilon: pld };
    return { epsilon: rdp.epsilon, order: rdp.order, method: 'rdp', pldEpsilon: pld };
  }

  /** An upper bound on delta at `epsilon` for the composed history: min(PLD, RDP), with which one it is. */
  deltaBound(events: readonly MechanismEvent[], epsilon: number): { delta: number; method: PldMethod } {
    if (typeof epsilon !== 'number' || Number.isNaN(epsilon) || epsilon < 0) throw new Error(`epsilon must be a number >= 0, got ${epsilon}`);
    if (!Array.isArray(events)) throw new Error('PLD: events must be an array');
    events.forEach((e, i) => validateMechanismEvent(e, i));
    if (events.length === 0) return { delta: 0, method: 'pld' };
    const rdp = this.rdp.delta(events, epsilon).delta;
    let pld = 1;
    try {
      const curves = this.curves(events, 1e-14);
      pld = Math.min(1, Math.max(...curves.map(({ composed, h }) => deltaOf(composed, h, epsilon))));
    } catch (error) {
      if (!(error instanceof PldGridError)) throw error;
    }
    return pld <= rdp ? { delta: pld, method: 'pld' } : { delta: rdp, method: 'rdp' };
  }

  /** An upper bound on delta at `epsilon` (the smaller of the PLD and RDP bounds). */
  delta(events: readonly MechanismEvent[], epsilon: number): number {
    return this.deltaBound(events, epsilon).delta;
  }
}
