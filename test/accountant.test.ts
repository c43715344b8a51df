import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { PldAccountant } from '@dpfed/privacy/pld-accountant';
import { validateMechanismEvent, type MechanismEvent } from '@dpfed/privacy/mechanism-event';
import { DEFAULT_RDP_ORDERS, RdpAccountant, TF_PRIVACY_ORDERS, deltaFromRdp, epsilonFromRdp, logErfc, rdpOfEvent, rdpPerStep } from '@dpfed/privacy/rdp-accountant';

interface Vectors {
  epsilon: { sampleRate: number; noiseMultiplier: number; steps: number; delta: number; orders: string; conversion: 'improved' | 'classic'; epsilon: number; bestOrder: number; tolerance: number }[];
  rdp: Record<string, unknown>[];
  pld: { delta: number; tolerance: number }[];
  federated: { q: number; noiseMultiplier: number; steps: number; delta: number; epsilonIntegerOrders: number }[];
}
const vectors = JSON.parse(readFileSync('/work/shared/reference/dp_vectors.json', 'utf8')) as Vectors;
const INTEGER_2_63 = Array.from({ length: 62 }, (_, i) => i + 2);
const ORDER_SETS: Record<string, readonly number[]> = { tf_privacy_cli: TF_PRIVACY_ORDERS, integer_2_63: INTEGER_2_63 };

/** Standard normal CDF via erfc (erfc checked against 30-digit values below). */
const Phi = (x: number) => Math.exp(logErfc(-x / Math.SQRT2)) / 2;

describe('reference vectors (dp_vectors.json)', () => {
  for (const v of vectors.epsilon) {
    it(`epsilon q=${v.sampleRate} sigma=${v.noiseMultiplier} T=${v.steps} delta=${v.delta} ${v.orders} ${v.conversion}`, () => {
      const accountant = new RdpAccountant(ORDER_SETS[v.orders]);
      const event = { sampleRate: v.sampleRate, noiseMultiplier: v.noiseMultiplier, steps: v.steps };
      const result = accountant.epsilon([event], v.delta, v.conversion);
      expect(Math.abs(result.epsilon - v.epsilon)).toBeLessThanOrEqual(v.tolerance);
      expect(result.order).toBe(v.bestOrder);
    });
  }

  it('rdp at order 5 (q=0.1, sigma=2, 10 steps)', () => {
    const v = vectors.rdp[0] as { sampleRate: number; noiseMultiplier: number; steps: number; order: number; rdp: number; tolerance: number };
    expect(Math.abs(rdpOfEvent({ sampleRate: v.sampleRate, noiseMultiplier: v.noiseMultiplier, steps: v.steps }, v.order) - v.rdp)).toBeLessThanOrEqual(v.tolerance);
  });

  it('rdp at fractional and integer orders lies between the exact and the conservative reference', () => {
    const v = vectors.rdp[1] as { sampleRate: number; noiseMultiplier: number; steps: number; orders: number[]; rdpExact: number[]; rdpDpAccounting: number[]; relativeTolerance: number };
    v.orders.forEach((order, k) => {
      const r = rdpOfEvent({ sampleRate: v.sampleRate, noiseMultiplier: v.noiseMultiplier, steps: v.steps }, order);
      const low = Math.min(v.rdpExact[k], v.rdpDpAccounting[k]) * (1 - v.relativeTolerance);
      const high = Math.max(v.rdpExact[k], v.rdpDpAccounting[k]) * (1 + v.relativeTolerance);
      expect(r).toBeGreaterThanOrEqual(low);
      expect(r).toBeLessThanOrEqual(high);
    });
  });

  it('federated (TFF tutorial) vector on integer orders', () => {
    const v = vectors.federated[0];
    const result = new RdpAccountant(INTEGER_2_63).epsilon([{ sampleRate: v.q, noiseMultiplier: v.noiseMultiplier, steps: v.steps }], v.delta);
    // q is given to 9 digits (120/3383), which moves epsilon by ~6e-8
    expect(Math.abs(result.epsilon - v.epsilonIntegerOrders)).toBeLessThan(1e-6);
  });

  it('the default grid is never looser than the tf_privacy grid', () => {
    for (const v of vectors.epsilon.filter((x) => x.conversion === 'improved')) {
      const event = { sampleRate: v.sampleRate, noiseMultiplier: v.noiseMultiplier, steps: v.steps };
      const ours = new RdpAccountant().epsilon([event], v.delta).epsilon;
      expect(ours).toBeLessThanOrEqual(v.epsilon + 1e-9);
      expect(ours).toBeGreaterThan(v.epsilon * 0.95);
    }
  });
});

describe('RDP building blocks', () => {
  it('log erfc matches 30-digit values, deep in the tail too', () => {
    const cases: [number, number][] = [
      [-3, 0.6931361352504468],
      [0.3, -0.3984300514400853],
      [2, -5.364941264616638],
      [3, -10.720363041981113],
      [10, -102.87988902484489],
    ];
    for (const [x, y] of cases) expect(Math.abs(logErfc(x) - y)).toBeLessThan(1e-12 * Math.max(1, Math.abs(y)));
    expect(Number.isFinite(logErfc(100))).toBe(true);
  });

  it('fractional orders equal the exact integral (mpmath quadrature, 30 digits)', () => {
    // D_alpha(mu || mu0) per step; the reverse direction D_alpha(mu0 || mu) was smaller in every case.
    const cases: [number, number, number, number][] = [
      [0.1, 1.0, 2.5, 0.023503727261003127],
      [0.1, 1.0, 7.25, 0.9768656747067852],
      [0.5, 0.7, 3.5, 2.610047159289778],
      [0.01, 0.5, 7.25, 9.158002585848706],
      [0.3, 2, 1.1, 0.013188642593982182],
      [0.01, 2.5, 1.5, 1.3001417943734774e-5],
    ];
    for (const [q, sigma, order, exact] of cases) expect(Math.abs(rdpPerStep(q, sigma, order) / exact - 1)).toBeLessThan(1e-8);
  });

  it('q = 1 is the plain Gaussian: alpha / (2 sigma^2)', () => {
    for (const order of [1.5, 2, 7.25, 32]) expect(rdpPerStep(1, 1.7, order)).toBeCloseTo(order / (2 * 1.7 * 1.7), 14);
  });

  it('RDP is steps times the per-step RDP', () => {
    expect(rdpOfEvent({ sampleRate: 0.02, noiseMultiplier: 1.1, steps: 700 }, 9.5)).toBeCloseTo(700 * rdpPerStep(0.02, 1.1, 9.5), 12);
  });

  it('refuses bad events, naming the field', () => {
    const bad: [unknown, RegExp][] = [
      [{ sampleRate: 0, noiseMultiplier: 1, steps: 1 }, /sampleRate/],
      [{ sampleRate: 1.5, noiseMultiplier: 1, steps: 1 }, /sampleRate/],
      [{ sampleRate: NaN, noiseMultiplier: 1, steps: 1 }, /sampleRate/],
      [{ sampleRate: 0.1, noiseMultiplier: 0, steps: 1 }, /noiseMultiplier/],
      [{ sampleRate: 0.1, noiseMultiplier: NaN, steps: 1 }, /noiseMultiplier/],
      [{ sampleRate: 0.1, noiseMultiplier: 1, steps: 0 }, /steps/],
      [{ sampleRate: 0.1, noiseMultiplier: 1, steps: 2.5 }, /steps/],
      [null, /mechanism event/],
    ];
    for (const [event, message] of bad) {
      expect(() => validateMechanismEvent(event)).toThrow(message);
      expect(() => new RdpAccountant().epsilon([event as MechanismEvent], 1e-5)).toThrow(message);
    }
    expect(() => new RdpAccountant().epsilon([{ sampleRate: 0.1, noiseMultiplier: 1, steps: 1 }], 1)).toThrow(/delta/);
    expect(() => new RdpAccountant().epsilon([{ sampleRate: 0.1, noiseMultiplier: 1, steps: 1 }], NaN)).toThrow(/delta/);
    expect(() => new RdpAccountant([1])).toThrow(/order/);
  });
});

describe('soundness: epsilon never below the true epsilon', () => {
  /** Exact delta(eps) of the Gaussian mechanism with sensitivity 1 and noise sigma (Balle-Wang 2018). */
  const gaussianDelta = (eps: number, s: number) => Phi(-eps * s + 1 / (2 * s)) - Math.exp(eps) * Phi(-eps * s - 1 / (2 * s));

  it('q = 1, T compositions: RDP epsilon >= the analytic Gaussian epsilon, and not far above it', () => {
    for (const [sigma, steps, delta] of [
      [1, 1, 1e-5],
      [0.8, 10, 1e-5],
      [5, 100, 1e-6],
      [20, 1000, 1e-5],
      [2, 3, 1e-3],
    ] as const) {
      const { epsilon } = new RdpAccountant().epsilon([{ sampleRate: 1, noiseMultiplier: sigma, steps }], delta);
      const s = sigma / Math.sqrt(steps); // T-fold composition = one Gaussian with sigma / sqrt(T)
      expect(gaussianDelta(epsilon, s)).toBeLessThanOrEqual(delta);
      // exact epsilon by bisection on the analytic curve
      let lo = 0;
      let hi = epsilon;
      for (let i = 0; i < 100; i++) {
        const mid = (lo + hi) / 2;
        if (gaussianDelta(mid, s) > delta) lo = mid;
        else hi = mid;
      }
      expect(epsilon).toBeGreaterThanOrEqual(hi);
      expect(epsilon).toBeLessThan(hi * 1.6 + 0.05);
    }
  });

  /** Exact delta(eps) of ONE step of the Poisson-subsampled Gaussian, both neighbouring directions. */
  const subsampledDelta = (eps: number, q: number, sigma: number) => {
    const S = (x: number) => Phi(-x);
    let remove = 1 - Math.exp(eps);
    if (eps > Math.log1p(-q)) {
      const z = sigma * sigma * Math.log((Math.exp(eps) - (1 - q)) / q) + 0.5;
      remove = (1 - q) * S(z / sigma) + q * S((z - 1) / sigma) - Math.exp(eps) * S(z / sigma);
    }
    let add = 0;
    if (eps < -Math.log1p(-q)) {
      const x = Math.exp(-eps);
      const z = x > 1 - q ? sigma * sigma * Math.log((x - (1 - q)) / q) + 0.5 : -Infinity;
      add = z === -Infinity ? 0 : Phi(z / sigma) - Math.exp(eps) * ((1 - q) * Phi(z / sigma) + q * Phi((z - 1) / sigma));
    }
    return Math.max(remove, add);
  };

  it('q < 1, one step: the true delta at the RDP epsilon is <= delta', () => {
    for (const [q, sigma, delta] of [
      [0.01, 0.5, 1e-5],
      [0.1, 1, 1e-5],
      [0.5, 0.8, 1e-3],
      [0.3, 2, 1e-6],
      [0.9, 0.6, 1e-5],
    ] as const) {
      const { epsilon } = new RdpAccountant().epsilon([{ sampleRate: q, noiseMultiplier: sigma, steps: 1 }], delta);
      expect(epsilon).toBeGreaterThan(0);
      expect(subsampledDelta(epsilon, q, sigma)).toBeLessThanOrEqual(delta);
      // the check has teeth: well below the RDP epsilon the true delta exceeds the target
      expect(subsampledDelta(epsilon * 0.3, q, sigma)).toBeGreaterThan(delta);
    }
  });

  it('delta from RDP inverts epsilon from RDP', () => {
    const accountant = new RdpAccountant();
    const events = [{ sampleRate: 0.02, noiseMultiplier: 1.2, steps: 3000 }];
    const { epsilon } = accountant.epsilon(events, 1e-6);
    expect(accountant.delta(events, epsilon).delta).toBeLessThanOrEqual(1e-6 * (1 + 1e-9));
    expect(accountant.delta(events, epsilon * 0.9).delta).toBeGreaterThan(1e-6);
    expect(deltaFromRdp([2], [0], 0).delta).toBeLessThanOrEqual(1);
  });
});

describe('composition', () => {
  const a = { sampleRate: 0.01, noiseMultiplier: 1.1, steps: 2000 };
  const b = { sampleRate: 0.05, noiseMultiplier: 0.9, steps: 300 };
  const c = { sampleRate: 1, noiseMultiplier: 8, steps: 20 };
  const accountant = new RdpAccountant();

  it('heterogeneous events compose by adding RDP per order, never by adding epsilons', () => {
    const both = accountant.epsilon([a, b, c], 1e-5);
    const rdp = DEFAULT_RDP_ORDERS.map((order) => rdpOfEvent(a, order) + rdpOfEvent(b, order) + rdpOfEvent(c, order));
    expect(both.epsilon).toBeCloseTo(epsilonFromRdp(DEFAULT_RDP_ORDERS, rdp, 1e-5).epsilon, 12);
    const separate = [a, b, c].map((e) => accountant.epsilon([e], 1e-5).epsilon);
    expect(both.epsilon).toBeLessThan(separate.reduce((x, y) => x + y, 0));
    expect(both.epsilon).toBeGreaterThan(Math.max(...separate));
  });

  it('is independent of event order and of how steps are split into events', () => {
    expect(accountant.epsilon([a, b], 1e-5).epsilon).toBeCloseTo(accountant.epsilon([b, a], 1e-5).epsilon, 12);
    const split = [
      { ...a, steps: 500 },
      { ...a, steps: 1500 },
    ];
    expect(accountant.epsilon(split, 1e-5).epsilon).toBeCloseTo(accountant.epsilon([a], 1e-5).epsilon, 12);
  });

  it('an empty history has epsilon 0 and more steps never lower epsilon', () => {
    expect(accountant.epsilon([], 1e-5).epsilon).toBe(0);
    let last = 0;
    for (const steps of [1, 10, 100, 1000, 10_000, 100_000]) {
      const { epsilon } = accountant.epsilon([{ ...a, steps }], 1e-5);
      expect(epsilon).toBeGreaterThanOrEqual(last);
      last = epsilon;
    }
  });

  it('computes 1e5 steps of one event (finite, above 1e4 steps)', () => {
    const fresh = makeAccountant('rdp');
    const big = fresh.epsilon([{ sampleRate: 0.01, noiseMultiplier: 1, steps: 100_000 }], 1e-5);
    const small = fresh.epsilon([{ sampleRate: 0.01, noiseMultiplier: 1, steps: 10_000 }], 1e-5);
    expect(Number.isFinite(big.epsilon)).toBe(true);
    expect(big.epsilon).toBeGreaterThan(small.epsilon);
    expect(big.order).toBeGreaterThan(1);
  });
});

describe('PLD accountant', () => {
  const gaussianDelta = (eps: number, s: number) => Phi(-eps * s + 1 / (2 * s)) - Math.exp(eps) * Phi(-eps * s - 1 / (2 * s));
  const pld = new PldAccountant();

  it('reproduces the pld reference vector (Gaussian sigma = sqrt 3, 3 compositions, delta at eps = 1)', () => {
    const v = vectors.pld[0];
    const events = [{ sampleRate: 1, noiseMultiplier: Math.sqrt(3), steps: 3 }];
    const delta = pld.delta(events, 1);
    expect(Math.abs(delta - v.delta)).toBeLessThanOrEqual(v.tolerance);
    expect(delta).toBeGreaterThanOrEqual(v.delta - 1e-10); // never optimistic
    const { epsilon } = pld.epsilon(events, v.delta);
    expect(epsilon).toBeGreaterThanOrEqual(1 - 1e-9);
    expect(epsilon).toBeLessThan(1.001);
  });

  it('q = 1: epsilon is at least the analytic one and within 1e-3 of it', () => {
    for (const [sigma, steps, delta] of [
      [1, 1, 1e-5],
      [5, 100, 1e-5],
      [2, 3, 1e-3],
      [0.9, 20, 1e-6],
    ] as const) {
      const { epsilon } = pld.epsilon([{ sampleRate: 1, noiseMultiplier: sigma, steps }], delta);
      const s = sigma / Math.sqrt(steps);
      expect(gaussianDelta(epsilon, s)).toBeLessThanOrEqual(delta * (1 + 1e-9));
      expect(gaussianDelta(epsilon - 1e-3, s)).toBeGreaterThan(delta);
    }
  });

  it('q < 1, one step: epsilon is at least the exact one (30-digit bisection) and close to it', () => {
    // exact epsilons from the closed-form single-step curve, both directions, mpmath at 40 digits
    const exact: [number, number, number, number][] = [[0.5, 0.8, 1e-3, 3.1934083815353524]];
    for (const [q, sigma, delta, eps] of exact) {
      const { epsilon } = pld.epsilon([{ sampleRate: q, noiseMultiplier: sigma, steps: 1 }], delta);
      expect(epsilon).toBeGreaterThanOrEqual(eps);
      expect(epsilon - eps).toBeLessThan(1e-4);
    }
  });

  it('is tighter than RDP yet not absurdly so, for the reference cases and a heterogeneous history', () => {
    const histories: MechanismEvent[][] = [
      [{ sampleRate: 0.0025, noiseMultiplier: 1.3, steps: 6000 }],
      [{ sampleRate: 0.01, noiseMultiplier: 1, steps: 1000 }],
      [
        { sampleRate: 0.01, noiseMultiplier: 1.1, steps: 500 },
        { sampleRate: 0.05, noiseMultiplier: 0.9, steps: 200 },
        { sampleRate: 1, noiseMultiplier: 8, steps: 5 },
      ],
    ];
    for (const events of histories) {
      const p = pld.epsilon(events, 1e-5).epsilon;
      const r = new RdpAccountant().epsilon(events, 1e-5).epsilon;
      expect(p).toBeLessThan(r);
      expect(p).toBeGreaterThan(0.7 * r);
    }
  });

  it('composes heterogeneous events (more events, more epsilon) and makeAccountant("pld") works', () => {
    const a = { sampleRate: 0.02, noiseMultiplier: 1.2, steps: 300 };
    const b = { sampleRate: 0.1, noiseMultiplier: 2, steps: 50 };
    const one = pld.epsilon([a], 1e-5).epsilon;
    const both = makeAccountant('pld').epsilon([a, b], 1e-5).epsilon;
    expect(both).toBeGreaterThan(one);
    expect(pld.epsilon([], 1e-5).epsilon).toBe(0);
    expect(() => pld.epsilon([{ sampleRate: 0, noiseMultiplier: 1, steps: 1 }], 1e-5)).toThrow(/sampleRate/);
  });
});
