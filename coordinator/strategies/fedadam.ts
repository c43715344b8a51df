// FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization"): the weighted mean delta is a
// pseudo-gradient d fed to a server-side Adam without bias correction:
//   m ← β1·m + (1−β1)·d,   v ← β2·v + (1−β2)·d²,   x ← x + η·m / (√v + τ)
// with m and v starting at zero. m and v persist with each round (saveState/loadState), stored as
// float32 and used exactly as stored, so a run resumed from the database continues bit for bit.
import type { EvaluationTotals } from '@dpfed/privacy/evaluation-vector';
import { metricsFromTotals, type AggregatedSum, type ClientUpdate, type FitConfig, type Strategy, type RoundMetrics } from '../strategy.ts';
import { checkUpdatesForAggregation, validateAggregatedSum } from '../update-validation.ts';
import { WeightedSumBuffer } from '../weighted-sum.ts';
import { totalWeight } from './fedavg.ts';

export interface FedAdamOptions {
  serverLearningRate?: number;
  beta1?: number;
  beta2?: number;
  tau?: number;
}

export const FEDADAM_DEFAULTS = { serverLearningRate: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 } as const;

const STATE_MAGIC = 0x4d444146; // "FADM" little-endian
const STATE_VERSION = 1;
const HEADER_BYTES = 16;

export class FedAdamStrategy implements Strategy {
  readonly name = 'fedadam';
  readonly worksOnSums = true;
  readonly serverLearningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly tau: number;
  private m = new Float32Array(0);
  private v = new Float32Array(0);
  /** Server steps taken so far (kept for inspection; the update rule has no bias correction). */
  private steps = 0;
  private readonly accumulator = new WeightedSumBuffer();

  constructor(options: FedAdamOptions = {}) {
    this.serverLearningRate = checkRange('serverLearningRate', options.serverLearningRate ?? FEDADAM_DEFAULTS.serverLearningRate, 0, Infinity, false);
    this.beta1 = checkRange('beta1', options.beta1 ?? FEDADAM_DEFAULTS.beta1, 0, 1, true);
    this.beta2 = checkRange('beta2', options.beta2 ?? FEDADAM_DEFAULTS.beta2, 0, 1, true);
    this.tau = checkRange('tau', options.tau ?? FEDADAM_DEFAULTS.tau, 0, Infinity, false);
  }

  get stepCount(): number {
    return this.steps;
  }

  configureFit(_round: number): FitConfig {
    return { proximalMu: 0 };
  }

  aggregateFit(_round: number, global: Float32Array, updates: readonly ClientUpdate[]): Float32Array {
    checkUpdatesForAggregation(updates, global.length);
    const sum = this.accumulator.weightedSum(
      updates.map((u) => u.delta),
      updates.map((u) => u.weight),
      global.length,
    );
    return this.step(global, sum, 1 / totalWeight(updates));
  }

  aggregateFitFromSum(_round: number, global: Float32Array, sum: AggregatedSum): Float32Array {
    validateAggregatedSum(sum, global.length);
    return this.step(global, this.accumulator.load(sum.weightedDeltaSum), 1 / sum.totalWeight);
  }

  /** One Adam step with pseudo-gradient d = factor · weightedSum. Updates m and v only when it succeeds. */
  private step(global: Float32Array, weightedSum: Float64Array, factor: number): Float32Array {
    const n = global.length;
    if (this.m.length === 0 && this.steps === 0) {
      this.m = new Float32Array(n);
      this.v = new Float32Array(n);
    }
    if (this.m.length !== n) throw new Error(`fedadam: optimiser state has ${this.m.length} values, the model has ${n}`);
    const { beta1, beta2, tau, serverLearningRate: eta } = this;
    const m = this.m;
    const v = this.v;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const d = factor * weightedSum[i];
      const mi = beta1 * m[i] + (1 - beta1) * d;
      const vi = beta2 * v[i] + (1 - beta2) * d * d;
      m[i] = mi;
      v[i] = vi;
      // Use the stored (float32) moments, so that a restored state reproduces the same parameters.
      out[i] = global[i] + (eta * m[i]) / (Math.sqrt(v[i]) + tau);
    }
    this.steps++;
    return out;
  }

  evaluate(_round: number, totals: EvaluationTotals): RoundMetrics {
    return metricsFromTotals(totals);
  }

  saveState(): Uint8Array | null {
    const n = this.m.length;
    const bytes = new Uint8Array(HEADER_BYTES + 8 * n);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, STATE_MAGIC, true);
    view.setUint32(4, STATE_VERSION, true);
    view.setUint32(8, n, true);
    view.setUint32(12, this.steps, true);
    bytes.set(new Uint8Array(this.m.buffer, this.m.byteOffset, 4 * n), HEADER_BYTES);
    bytes.set(new Uint8Array(this.v.buffer, this.v.byteOffset, 4 * n), HEADER_BYTES + 4 * n);
    return bytes;
  }

  loadState(state: Uint8Array | null): void {
    if (state === null) {
      this.m = new Float32Array(0);
      this.v = new Float32Array(0);
      this.steps = 0;
      return;
    }
    if (!(state instanceof Uint8Array) || state.length < HEADER_BYTES) throw new Error(`fedadam: state too short (${state?.length ?? 0} bytes, header is ${HEADER_BYTES})`);
    const view = new DataView(state.buffer, state.byteOffset, state.byteLength);
    if (view.getUint32(0, true) !== STATE_MAGIC) throw new Error('fedadam: state is not a FedAdam state (bad magic)');
    const version = view.getUint32(4, true);
    if (version !== STATE_VERSION) throw new Error(`fedadam: state version ${version} is not supported (expected ${STATE_VERSION})`);
    const n = view.getUint32(8, true);
    if (state.length !== HEADER_BYTES + 8 * n) throw new Error(`fedadam: state has ${state.length} bytes, expected ${HEADER_BYTES + 8 * n} for ${n} parameters`);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    new Uint8Array(m.buffer).set(state.subarray(HEADER_BYTES, HEADER_BYTES + 4 * n));
    new Uint8Array(v.buffer).set(state.subarray(HEADER_BYTES + 4 * n));
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(m[i]) || !Number.isFinite(v[i]) || v[i] < 0) throw new Error(`fedadam: state has an invalid moment at index ${i}`);
    }
    this.m = m;
    this.v = v;
    this.steps = view.getUint32(12, true);
  }
}

function checkRange(name: string, value: number, low: number, high: number, lowInclusive: boolean): number {
  const ok = typeof value === 'number' && Number.isFinite(value) && (lowInclusive ? value >= low : value > low) && value < high;
  if (!ok) throw new Error(`fedadam: ${name} must be in ${lowInclusive ? '[' : '('}${low}, ${high}), got ${value}`);
  return value;
}
