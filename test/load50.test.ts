// Load: 50 institutions on one coordinator, as in production (mutual TLS, enrolment, SecAgg), in two child
// processes with the no-training learner of the round-overhead bench (bench/load50-bench.ts runLoad).
// Every institution must take part in both rounds, none may be dropped, and the secure sum must still be
// the FedAvg of what the institutions sent: each sends global + 1e-4 on every 64th parameter, so after
// two rounds the model has moved by 2e-4 there and nowhere else (up to SecAgg's fixed-point rounding).
import { describe, expect, it } from 'vitest';
import { runLoad } from '@dpfed/bench/load50-bench';

describe('50 institutions on loopback', () => {
  it('completes 2 SecAgg rounds over mutual TLS with all 50 in every round, and sums their updates exactly', async () => {
    const run = await runLoad({ institutions: 50, rounds: 2, learner: 'none', processes: 2 });
    expect(run.failures).toEqual([]);
    expect(run.participants).toEqual([50, 50]);
    expect(run.dropped).toEqual([]);
    expect(run.finalModel.length).toBe(run.initialModel.length);
    let worst = 0;
    for (let i = 0; i < run.finalModel.length; i++) {
      const expected = run.initialModel[i] + (i % 64 === 0 ? 2e-4 : 0);
      worst = Math.max(worst, Math.abs(run.finalModel[i] - expected));
    }
    expect(worst).toBeLessThan(2e-5);
    expect(run.peakRssMB).toBeGreaterThan(0);
  }, 110_000);
});
