// Aggregation throughput: FedAvg over 10 clients × 1M parameters, against a plain float32 sum of the same
// data in the same run (`sum[i] += x[i]` per client). Both read the same 40 MB of deltas; the ratio is
// what matters on a shared machine. Medians over interleaved repetitions.
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { FedAvgStrategy } from '@dpfed/coordinator/strategies/fedavg';
import type { ClientUpdate } from '@dpfed/coordinator/strategy';
import { median, roundTo as round } from './statistics.ts';

export interface AggregationBenchOptions {
  clients?: number;
  parameters?: number;
  repetitions?: number;
}

export async function benchAggregation(options: AggregationBenchOptions = {}): Promise<{ aggregationVsPlainSum: number; aggregationGBps: number; plainSumGBps: number }> {
  const clients = options.clients ?? 10;
  const parameters = options.parameters ?? 1_000_000;
  const repetitions = options.repetitions ?? 9;
  const random = new SeededRandom('aggregation-bench');
  const updates: ClientUpdate[] = Array.from({ length: clients }, (_, k) => {
    const delta = new Float32Array(parameters);
    for (let i = 0; i < parameters; i++) delta[i] = (random.next() - 0.5) * 0.02;
    return { institutionId: `bank-${k}`, weight: 100 + k, delta };
  });
  const global = new Float32Array(parameters);
  const strategy = new FedAvgStrategy();
  const bytes = clients * parameters * 4;

  const plainMs: number[] = [];
  const aggregationMs: number[] = [];
  let sink = 0;
  for (let r = 0; r < repetitions + 1; r++) {
    let t = performance.now();
    const sum = plainFloat32Sum(
      updates.map((u) => u.delta),
      parameters,
    );
    const plain = performance.now() - t;
    t = performance.now();
    const next = strategy.aggregateFit(r + 1, global, updates);
    const aggregation = performance.now() - t;
    sink += sum[parameters - 1] + next[parameters - 1];
    if (r > 0) {
      // the first repetition warms up the JIT and the buffers
      plainMs.push(plain);
      aggregationMs.push(aggregation);
    }
  }
  if (!Number.isFinite(sink)) throw new Error('aggregation bench: non-finite result');
  const plainSumGBps = bytes / 1e9 / (median(plainMs) / 1000);
  const aggregationGBps = bytes / 1e9 / (median(aggregationMs) / 1000);
  return {
    aggregationVsPlainSum: round(aggregationGBps / plainSumGBps, 3),
    aggregationGBps: round(aggregationGBps, 3),
    plainSumGBps: round(plainSumGBps, 3),
  };
}

/** The baseline: the obvious float32 loop, one pass over the output per client. */
function plainFloat32Sum(vectors: readonly Float32Array[], length: number): Float32Array {
  const sum = new Float32Array(length);
  for (const v of vectors) for (let i = 0; i < length; i++) sum[i] += v[i];
  return sum;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchAggregation()));
}
