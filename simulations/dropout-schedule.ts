// Which institutions sit out each round of a simulated federation: per round, a seeded choice of
// round(dropout × N) of the N institutions (the same for a seed whatever the transport or the order in
// which institutions ask). A chosen institution declines its TRAIN task (FederationClientOptions.sitsOut),
// so the round closes without it at once instead of waiting for its deadline.
import { SeededRandom } from '@dpfed/proto/seeded-random';

export class DropoutSchedule {
  private readonly byRound = new Map<number, Set<string>>();

  constructor(
    private readonly ids: readonly string[],
    private readonly perRound: number,
    private readonly seed: string,
  ) {
    if (perRound < 0 || perRound >= ids.length) throw new Error(`dropout: ${perRound} of ${ids.length} institutions per round leaves none`);
  }

  /** The institutions that sit out `round`. */
  dropped(round: number): Set<string> {
    let out = this.byRound.get(round);
    if (!out) {
      const order = [...this.ids];
      new SeededRandom(`${this.seed}:sim-dropout:${round}`).shuffle(order);
      out = new Set(order.slice(0, this.perRound));
      this.byRound.set(round, out);
    }
    return out;
  }

  /** FederationClientOptions.sitsOut for `id`. */
  sitsOut(id: string): (task: { round: number }) => string | null {
    return (task) => (this.dropped(task.round).has(id) ? `simulated dropout in round ${task.round}` : null);
  }
}
