// Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism (add/remove-one neighbours).
//
// Per step, at order alpha, RDP(alpha) = log(A_alpha) / (alpha - 1) with
//   A_alpha = E_{z ~ mu0} [ (mu(z) / mu0(z))^alpha ],  mu0 = N(0, s^2), mu = (1-q) N(0, s^2) + q N(1, s^2)
// (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism"; they show
// this direction dominates the reverse one, which we also checked numerically at fractional orders).
//   - integer alpha: A = sum_{i=0..alpha} C(alpha,i) (1-q)^(alpha-i) q^i exp((i^2-i)/(2 s^2)), exact;
//   - fractional alpha (their section 3.3): split the integral at z0 = s^2 log(1/q - 1) + 1/2, where
//     q mu1/mu0 = 1-q, and expand (1-q + q r)^alpha as a generalised binomial series on each side, the
//     side integrals being Gaussian tails: term i of the left series is
//       C(alpha,i) (1-q)^(alpha-i) q^i exp((i^2-i)/(2s^2)) * erfc((i - z0)/(sqrt2 s)) / 2
//     and of the right series (j = alpha - i)
//       C(alpha,i) q^j (1-q)^i exp((j^2-j)/(2s^2)) * erfc((z0 - j)/(sqrt2 s)) / 2;
//     both series are summed in log space with signed terms until a term drops below e^-30;
//   - q = 1 is the plain Gaussian: RDP(alpha) = alpha / (2 s^2).
// RDP does not depend on the step count: an event of T steps has T times the per-step RDP, and a
// history of events composes by adding RDP order by order. Conversion to (epsilon, delta) uses the
// improved bound of Balle et al. 2020 (Thm 21) / Canonne-Kamath-Steinke 2020:
//   epsilon = RDP(alpha) + log((alpha-1)/alpha) - (log delta + log alpha)/(alpha - 1),
// minimised over the order grid; the classic Mironov 2017 bound RDP - log(delta)/(alpha-1) is kept for
// comparison with older published figures.
import type { Accountant } from './accountant.ts';
import { validateDelta, validateMechanismEvent, type MechanismEvent } from './mechanism-event.ts';

function range(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let k = 0; from + k * step <= to + 1e-9; k++) out.push(Math.round((from + k * step) * 1e6) / 1e6);
  return out;
}

/**
 * Default orders: fractional 1.05..1.95 (step 0.05) and 2.1..10.9 (step 0.1), every integer 2..256,
 * then 320, 384, 448, 512, 768, 1024 (large orders win when epsilon is small).
 */
export const DEFAULT_RDP_ORDERS: readonly number[] = Object.freeze(
  [...new Set([...range(1.05, 1.95, 0.05), ...range(2.1, 10.9, 0.1), ...range(2, 256, 1), 320, 384, 448, 512, 768, 1024])].sort((a, b) => a - b),
);

/** TensorFlow Privacy's command-line grid, for comparison with its published figures. */
export const TF_PRIVACY_ORDERS: readonly number[] = Object.freeze([1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, ...range(5, 63, 1), 128, 256, 512]);

const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);

/** log(erfc(x)) for every real x, accurate to a relative ~1e-13 also deep in the tail where erfc underflows. */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return Math.log(2 - Math.exp(logErfc(-x)));
  if (x < 2.5) {
    // erf(x) = 2/sqrt(pi) e^{-x^2} sum_n (2x^2)^n x / (1*3*...*(2n+1)): all terms positive.
    const twoX2 = 2 * x * x;
    let term = x;
    let sum = x;
    for (let n = 0; n < 200 && term > 1e-17 * sum; n++) {
      term *= twoX2 / (2 * n + 3);
      sum += term;
    }
    const erf = (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
    return Math.log1p(-erf);
  }
  // erfc(x) = e^{-x^2}/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), by modified Lentz.
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    d = x + a * d;
    if (Math.abs(d) < tiny) d = tiny;
    d = 1 / d;
    c = x + a / c;
    if (Math.abs(c) < tiny) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return -x * x - LOG_SQRT_PI - Math.log(f);
}

/** log(e^a + e^b). */
function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log1p(Math.exp(-Math.abs(a - b)));
}

function logSumExp(values: number[]): number {
  let m = -Infinity;
  for (const v of values) if (v > m) m = v;
  if (m === -Infinity) return -Infinity;
  if (m === Infinity) return Infinity;
  let s = 0;
  for (const v of values) s += Math.exp(v - m);
  return m + Math.log(s);
}

function logAInteger(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const inverseTwoVariance = 1 / (2 * sigma * sigma);
  const terms: number[] = new Array(alpha + 1);
  let logBinomial = 0;
  for (let i = 0; i <= alpha; i++) {
    terms[i] = logBinomial + i * logQ + (alpha - i) * log1mQ + (i * i - i) * inverseTwoVariance;
    logBinomial += Math.log(alpha - i) - Math.log(i + 1);
  }
  return logSumExp(terms);
}

function logAFractional(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const inverseTwoVariance = 1 / (2 * sigma * sigma);
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const scale = Math.SQRT2 * sigma;
  const logHalf = Math.log(0.5);
  let positive = -Infinity;
  let negative = -Infinity;
  let logCoefficient = 0;
  let sign = 1;
  for (let i = 0; ; i++) {
    if (i > 100000) throw new Error(`RDP: fractional order ${alpha} series did not converge (q=${q}, sigma=${sigma})`);
    const j = alpha - i;
    const left = logCoefficient + i * logQ + j * log1mQ + (i * i - i) * inverseTwoVariance + logHalf + logErfc((i - z0) / scale);
    const right = logCoefficient + j * logQ + i * log1mQ + (j * j - j) * inverseTwoVariance + logHalf + logErfc((z0 - j) / scale);
    const both = logAdd(left, right);
    if (sign > 0) positive = logAdd(positive, both);
    else negative = logAdd(negative, both);
    const factor = (alpha - i) / (i + 1);
    if (factor < 0) sign = -sign;
    logCoefficient += Math.log(Math.abs(factor));
    if (Math.max(left, right) < -30) break;
  }
  if (negative === -Infinity) return positive;
  if (!(positive > negative)) throw new Error(`RDP: cancellation at fractional order ${alpha} (q=${q}, sigma=${sigma})`);
  return positive + Math.log1p(-Math.exp(negative - positive));
}

function checkOrder(order: number): void {
  if (typeof order !== 'number' || !Number.isFinite(order) || order <= 1) throw new Error(`RDP: order must be a finite number > 1, got ${order}`);
}

/** RDP of ONE step of the Poisson-subsampled Gaussian at `order`. */
export function rdpPerStep(sampleRate: number, noiseMultiplier: number, order: number): number {
  validateMechanismEvent({ sampleRate, noiseMultiplier, steps: 1 });
  checkOrder(order);
  if (sampleRate === 1) return order / (2 * noiseMultiplier * noiseMultiplier);
  const logA = Number.isInteger(order) ? logAInteger(sampleRate, noiseMultiplier, order) : logAFractional(sampleRate, noiseMultiplier, order);
  // A_alpha >= 1 in exact arithmetic; clamp a rounding-level negative.
  return Math.max(0, logA) / (order - 1);
}

/** RDP of a whole event (steps compositions) at `order`. */
export function rdpOfEvent(event: MechanismEvent, order: number): number {
  validateMechanismEvent(event);
  return event.steps * rdpPerStep(event.sampleRate, event.noiseMultiplier, order);
}

export type RdpConversion = 'improved' | 'classic';

/** The smallest epsilon over the orders for the given RDP curve at delta. */
export function epsilonFromRdp(orders: readonly number[], rdp: ArrayLike<number>, delta: number, conversion: RdpConversion = 'improved'): { epsilon: number; order: number } {
  validateDelta(delta);
  if (orders.length !== rdp.length || orders.length === 0) throw new Error('RDP: orders and rdp must be non-empty and of equal length');
  const logDelta = Math.log(delta);
  let best = Infinity;
  let bestOrder = orders[0];
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k];
    const r = rdp[k];
    if (Number.isNaN(r)) throw new Error(`RDP: NaN at order ${a}`);
    const eps = conversion === 'improved' ? r + Math.log1p(-1 / a) - (logDelta + Math.log(a)) / (a - 1) : r - logDelta / (a - 1);
    if (eps < best) {
      best = eps;
      bestOrder = a;
    }
  }
  return { epsilon: Math.max(0, best), order: bestOrder };
}

/** The smallest delta over the orders at which the RDP curve gives `epsilon` (improved conversion). */
export function deltaFromRdp(orders: readonly number[], rdp: ArrayLike<number>, epsilon: number): { delta: number; order: number } {
  if (typeof epsilon !== 'number' || Number.isNaN(epsilon) || epsilon < 0) throw new Error(`epsilon must be a number >= 0, got ${epsilon}`);
  let best = Infinity;
  let bestOrder = orders[0];
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k];
    const logDelta = (a - 1) * (rdp[k] - epsilon + Math.log1p(-1 / a)) - Math.log(a);
    if (logDelta < best) {
      best = logDelta;
      bestOrder = a;
    }
  }
  return { delta: Math.min(1, Math.exp(best)), order: bestOrder };
}

/**
 * Per-step RDP curves by (orders, q, sigma), shared by every RdpAccountant of the process: callers make a
 * fresh accountant for each budget check, a history has few distinct mechanisms, and one curve costs
 * milliseconds (the fractional orders' series), so without sharing every check of every round recomputed
 * the same curves. The values are a pure function of the key; the map is cleared when it grows large (a
 * noise calibration searches over many sigmas).
 */
const SHARED_CURVES = new Map<string, Float64Array>();
const MAX_SHARED_CURVES = 1024;

export class RdpAccountant implements Accountant {
  readonly kind = 'rdp' as const;
  readonly orders: readonly number[];
  private readonly ordersKey: string;

  constructor(orders: readonly number[] = DEFAULT_RDP_ORDERS) {
    if (!Array.isArray(orders) || orders.length === 0) throw new Error('RDP: orders must be a non-empty array');
    orders.forEach(checkOrder);
    this.orders = Object.freeze([...orders]);
    this.ordersKey = orders === DEFAULT_RDP_ORDERS ? 'default' : this.orders.join(',');
  }

  private perStep(q: number, sigma: number): Float64Array {
    const key = `${this.ordersKey}|${q}:${sigma}`;
    let curve = SHARED_CURVES.get(key);
    if (!curve) {
      curve = Float64Array.from(this.orders, (a) => rdpPerStep(q, sigma, a));
      if (SHARED_CURVES.size >= MAX_SHARED_CURVES) SHARED_CURVES.clear();
      SHARED_CURVES.set(key, curve);
    }
    return curve;
  }

  /** The composed RDP of the history, order by order (aligned with `orders`). */
  rdp(events: readonly MechanismEvent[]): Float64Array {
    if (!Array.isArray(events)) throw new Error('RDP: events must be an array');
    const total = new Float64Array(this.orders.length);
    events.forEach((e, i) => {
      validateMechanismEvent(e, i);
      const curve = this.perStep(e.sampleRate, e.noiseMultiplier);
      for (let k = 0; k < total.length; k++) total[k] += e.steps * curve[k];
    });
    return total;
  }

  epsilon(events: readonly MechanismEvent[], delta: number, conversion: RdpConversion = 'improved'): { epsilon: number; order: number } {
    validateDelta(delta);
    const rdp = this.rdp(events);
    // No mechanism ran: nothing was spent (the grid-limited conversion would report a small positive figure).
    if (events.length === 0) return { epsilon: 0, order: this.orders[this.orders.length - 1] };
    return epsilonFromRdp(this.orders, rdp, delta, conversion);
  }

  delta(events: readonly MechanismEvent[], epsilon: number): { delta: number; order: number } {
    return deltaFromRdp(this.orders, this.rdp(events), epsilon);
  }
}
