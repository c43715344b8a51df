// One step of the Poisson-subsampled Gaussian as a privacy loss distribution (PLD), for the PLD accountant
// (privacy/pld-accountant.ts), in both neighbouring directions:
//   remove: P = (1-q) N(0,s^2) + q N(1,s^2), Q = N(0,s^2);   add: P = N(0,s^2), Q = the mixture.
// For a pair (P, Q) the privacy curve is delta(eps) = E_{Y~P}[(1 - e^{eps - Y})_+] with Y = log(P/Q) the
// privacy loss. Each direction's exact single-step curve has a closed form through Gaussian tails. The
// remove direction's losses are >= log(1-q) and unbounded above; the add direction's are <= -log(1-q)
// and unbounded below.
//
// Discretisation, pessimistic ("connect the dots", Doroshenko et al. 2022): on the loss grid y_k = k*h,
// the curve delta as a function of x = e^eps is convex, so the piecewise-linear interpolation through
// the exact points (x_k, delta(y_k)), extended by the chord to (0, 1) on the left and by a constant
// (an atom at +infinity carrying delta(y_max)) on the right, lies above the exact curve everywhere. It is
// itself the privacy curve of a discrete pair whose P-masses are p_k = x_k * (slope_k - slope_{k-1});
// that pair dominates the true one, and domination survives composition, so every delta computed from
// it is an upper bound. Tiny negative masses from rounding are raised to 0 (only raises delta). Its
// error does not grow like steps * h, unlike rounding each loss up.
// Where delta is close to 1 - e^eps (far below eps = 0) the curvature is read from rest = delta - (1 -
// e^eps), computed by its own formula: second differences of delta itself are rounding noise there, and
// raising their negative parts to 0 would add mass (a step's masses would sum above 1, which compounds
// over thousands of steps).
//
// A step's grid runs from its lowest loss (log(1-q) for remove; for add, the loss at z = c*sigma, the mass
// below moved up onto the first point, which only raises delta) to y_max, the loss at z = 1 + c*sigma,
// with c chosen by the caller from its truncation budget; the atom at infinity carries delta(y_max),
// exactly the mass left out above.
import { logErfc } from './rdp-accountant.ts';

export type Direction = 'remove' | 'add';

/** Gaussian survival P(N(0,1) > x) and CDF, accurate in the tails. */
const survival = (x: number) => 0.5 * Math.exp(logErfc(x / Math.SQRT2));
const cdf = (x: number) => 0.5 * Math.exp(logErfc(-x / Math.SQRT2));

/** Loss boundary z of one direction at eps: log(1-q + q e^{(2z-1)/(2s^2)}) = eps (remove) or -eps (add); -Infinity when none. */
function boundary(direction: Direction, q: number, sigma: number, eps: number): number {
  const x = Math.exp(direction === 'remove' ? eps : -eps);
  return x > 1 - q ? sigma * sigma * Math.log((x - (1 - q)) / q) + 0.5 : -Infinity;
}

/** Exact single-step privacy curve delta(eps) of one direction. */
function exactDelta(direction: Direction, q: number, sigma: number, eps: number): number {
  const e = Math.exp(eps);
  const z = boundary(direction, q, sigma, eps);
  if (direction === 'remove') {
    if (z === -Infinity) return 1 - e;
    return Math.max(0, (1 - q) * survival(z / sigma) + q * survival((z - 1) / sigma) - e * survival(z / sigma));
  }
  if (z === -Infinity) return 0;
  return Math.max(0, cdf(z / sigma) - e * ((1 - q) * cdf(z / sigma) + q * cdf((z - 1) / sigma)));
}

/**
 * rest(eps) = delta(eps) - (1 - e^eps) >= 0 by its own formula, accurate where delta is close to 1 - e^eps
 * (far below eps = 0), where the curvature of the curve is read from it.
 */
function exactRest(direction: Direction, q: number, sigma: number, eps: number): number {
  const e = Math.exp(eps);
  const z = boundary(direction, q, sigma, eps);
  if (direction === 'remove') {
    if (z === -Infinity) return 0;
    return Math.max(0, (e - (1 - q)) * cdf(z / sigma) - q * cdf((z - 1) / sigma));
  }
  if (z === -Infinity) return Math.max(0, e - 1);
  return Math.max(0, (e * (1 - q) - 1) * survival(z / sigma) + e * q * survival((z - 1) / sigma));
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

export interface DiscretePld {
  /** Grid index of masses[0]: its loss is first * h. */
  first: number;
  masses: Float64Array;
  infinityMass: number;
}

/** Loss range [low, high] of one step that the grid covers, for a Gaussian tail cut at c. */
export function stepRange(direction: Direction, q: number, sigma: number, c: number): { low: number; high: number } {
  if (direction === 'remove') {
    return { low: q < 1 ? Math.log1p(-q) : lossAt(q, sigma, -sigma * c), high: lossAt(q, sigma, 1 + sigma * c) };
  }
  return { low: -lossAt(q, sigma, sigma * c), high: q < 1 ? -Math.log1p(-q) : -lossAt(q, sigma, -sigma * c) };
}

/** Mean and variance of one step's privacy loss under P, by quadrature over z. */
export function stepMoments(direction: Direction, q: number, sigma: number): { mean: number; variance: number } {
  const n = 4000;
  const lo = -12 * sigma;
  const hi = 1 + 12 * sigma;
  const dz = (hi - lo) / n;
  const inverseTwoVariance = 1 / (2 * sigma * sigma);
  let m0 = 0;
  let m1 = 0;
  let m2 = 0;
  for (let i = 0; i <= n; i++) {
    const z = lo + i * dz;
    const base = Math.exp(-z * z * inverseTwoVariance);
    const density = direction === 'remove' ? (1 - q) * base + q * Math.exp(-(z - 1) * (z - 1) * inverseTwoVariance) : base;
    const y = direction === 'remove' ? lossAt(q, sigma, z) : -lossAt(q, sigma, z);
    m0 += density;
    m1 += density * y;
    m2 += density * y * y;
  }
  const mean = m1 / m0;
  return { mean, variance: Math.max(0, m2 / m0 - mean * mean) };
}

/** Mean and variance of a step's grid masses, in grid units (the atom at infinity left out). */
export function gridMoments(pld: DiscretePld): { mean: number; variance: number } {
  let m0 = 0;
  let m1 = 0;
  for (let k = 0; k < pld.masses.length; k++) {
    m0 += pld.masses[k];
    m1 += pld.masses[k] * k;
  }
  const offset = m1 / m0;
  let m2 = 0;
  for (let k = 0; k < pld.masses.length; k++) m2 += pld.masses[k] * (k - offset) * (k - offset);
  return { mean: pld.first + offset, variance: m2 / m0 };
}

/** Most grid points one step may take. */
export const MAX_STEP_POINTS = 1 << 18;

/** A grid the accountant cannot afford: it reports its RDP fence instead. */
export class PldGridError extends Error {}

/** Connect-the-dots masses of one step on grid indices first..last (see the file header). */
export function discretise(direction: Direction, q: number, sigma: number, h: number, first: number, last: number): DiscretePld {
  const n = last - first + 1;
  if (n > MAX_STEP_POINTS) throw new PldGridError(`PLD: ${n} grid points needed for one step at discretisation ${h}`);
  const deltas = new Float64Array(n);
  const rests = new Float64Array(n);
  const xs = new Float64Array(n);
  let restRegion = true;
  for (let k = 0; k < n; k++) {
    const y = (first + k) * h;
    xs[k] = Math.exp(y);
    // delta decreases along the grid: while it is >= 1/2 it is taken from the rest (accurate there, and the
    // rest is what the masses are read from there); from the first point below 1/2 on, directly.
    if (restRegion) {
      const rest = exactRest(direction, q, sigma, y);
      const delta = rest - Math.expm1(y);
      if (delta >= 0.5) {
        deltas[k] = delta;
        rests[k] = rest;
        continue;
      }
      restRegion = false;
    }
    deltas[k] = exactDelta(direction, q, sigma, y);
    rests[k] = NaN;
  }
  // Slopes of the interpolation: slope_k on [x_k, x_{k+1}], slope_{-1} the chord from (0, 1), 0 after the
  // last point. Where delta >= 1/2 on an interval the curve is 1 - x plus a small rest, and the difference
  // of two slopes is read from the rests (the -1 cancels exactly); elsewhere from delta itself.
  const restSide = (k: number) => k >= -1 && k + 1 < n && !Number.isNaN(rests[k + 1]) && (k < 0 || !Number.isNaN(rests[k]));
  const deltaSlope = (k: number) => (k < 0 ? (deltas[0] - 1) / xs[0] : k + 1 < n ? (deltas[k + 1] - deltas[k]) / (xs[k + 1] - xs[k]) : 0);
  const restSlope = (k: number) => (k < 0 ? rests[0] / xs[0] : (rests[k + 1] - rests[k]) / (xs[k + 1] - xs[k]));
  const masses = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const step = restSide(k - 1) && restSide(k) ? restSlope(k) - restSlope(k - 1) : deltaSlope(k) - deltaSlope(k - 1);
    masses[k] = Math.max(0, xs[k] * step);
  }
  return { first, masses, infinityMass: deltas[n - 1] };
}
