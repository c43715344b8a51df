// ε as a function of the noise multiplier σ, for the bisections of noise calibration (calibrate.ts,
// evaluation-mechanism.ts), computed more cheaply where it cannot change the answer.
//
// The RDP accountant's ε is a minimum over ~370 orders, and a bisection asks for it at some 20 values of σ.
// The order that attains the minimum grows with σ (more noise, smaller privacy loss per order, so higher
// orders pay off), so once ε is known exactly at two values σa < σb, the minimum at a σ between them is
// taken at an order between theirs. `at(σ)` then minimises over that window of orders only (widened by a
// margin); everywhere else, and whenever the window would not be much smaller than the grid, over all of
// them. A minimum over fewer orders is never below the true one, so:
//   - `at(σ) <= target` proves exact ε(σ) <= target: the bisection moves its upper end exactly as with all
//     orders;
//   - `at(σ) > target` is exact only if the window held the minimising order: the caller confirms its final
//     lower end with `exact()` (exact ε decreases in σ, so if the final lower end is above the target, every
//     earlier one was too) and otherwise repeats the search with all orders (`windowed: false`).
// With those checks the calibrated σ is the one the search over all orders returns.
import { makeAccountant, type AccountantKind } from './accountant.ts';
import type { MechanismEvent } from './mechanism-event.ts';
import { RdpAccountant } from './rdp-accountant.ts';

export interface EpsilonOfSigma {
  /** ε at σ; at least the exact ε, and equal to it when σ is outside the exactly known range. */
  at(sigma: number): number;
  /** ε at σ over every order of the accountant. */
  exact(sigma: number): number;
}

/** The window is widened by this factor on each side of the orders seen at its two ends. */
const MARGIN = 1.25;

export function epsilonOfSigma(kind: AccountantKind, eventsAt: (sigma: number) => MechanismEvent[], delta: number, windowed = true): EpsilonOfSigma {
  const full = makeAccountant(kind);
  if (!windowed || !(full instanceof RdpAccountant)) {
    const exact = (sigma: number) => full.epsilon(eventsAt(sigma), delta).epsilon;
    return { at: exact, exact };
  }
  const orders = full.orders;
  /** Exact evaluations: σ and the order that attained the minimum, sorted by σ. */
  const known: { sigma: number; order: number }[] = [];
  const windows = new Map<string, RdpAccountant>();
  const exact = (sigma: number) => {
    const { epsilon, order } = full.epsilon(eventsAt(sigma), delta);
    const at = known.findIndex((k) => k.sigma > sigma);
    known.splice(at < 0 ? known.length : at, 0, { sigma, order });
    return epsilon;
  };
  const at = (sigma: number) => {
    const above = known.findIndex((k) => k.sigma > sigma);
    if (above <= 0) return exact(sigma);
    const low = Math.min(known[above - 1].order, known[above].order) / MARGIN;
    const high = Math.max(known[above - 1].order, known[above].order) * MARGIN;
    const window = orders.filter((a) => a >= low && a <= high);
    if (window.length === 0 || window.length > orders.length / 4) return exact(sigma);
    const key = window.join(',');
    let accountant = windows.get(key);
    if (!accountant) windows.set(key, (accountant = new RdpAccountant(window)));
    return accountant.epsilon(eventsAt(sigma), delta).epsilon;
  };
  return { at, exact };
}
