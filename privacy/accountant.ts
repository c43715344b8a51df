// The accountant interface. An accountant holds no running total: its input IS the event history, and
// epsilon is always computed from the composed events (never by adding epsilons).
import type { MechanismEvent } from './mechanism-event.ts';
import { RdpAccountant } from './rdp-accountant.ts';
import { PldAccountant } from './pld-accountant.ts';

export type AccountantKind = 'rdp' | 'pld';

export interface Accountant {
  readonly kind: AccountantKind;
  /**
   * The smallest epsilon this accountant can certify for the composition of `events` at `delta`. `order`:
   * the RDP order that gave it, when RDP did; `method`: which bound gave it, for an accountant that takes
   * the smaller of two (the PLD accountant reports 'pld', or 'rdp' when its RDP fence was smaller).
   */
  epsilon(events: readonly MechanismEvent[], delta: number): { epsilon: number; order?: number; method?: 'pld' | 'rdp' };
}

export function makeAccountant(kind: AccountantKind): Accountant {
  if (kind === 'rdp') return new RdpAccountant();
  if (kind === 'pld') return new PldAccountant();
  throw new Error(`accountant: kind must be "rdp" or "pld", got ${JSON.stringify(kind)}`);
}
