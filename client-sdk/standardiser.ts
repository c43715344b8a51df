// Standardisation fitted on the institution's own training split only: per feature (x − mean) / std,
// missing values (NaN) ignored when fitting and set to 0 (the training mean) when applied. Nothing about
// the data leaves the institution, not even these statistics.
import type { Dataset } from './csv-dataset.ts';

export interface Standardiser {
  mean: Float64Array;
  std: Float64Array;
}

export function fitStandardiser(data: Dataset): Standardiser {
  const mean = new Float64Array(data.dim);
  const sq = new Float64Array(data.dim);
  const count = new Float64Array(data.dim);
  for (let r = 0; r < data.n; r++) {
    for (let j = 0; j < data.dim; j++) {
      const v = data.x[r * data.dim + j];
      if (Number.isNaN(v)) continue;
      count[j]++;
      const d = v - mean[j];
      mean[j] += d / count[j];
      sq[j] += d * (v - mean[j]);
    }
  }
  const std = new Float64Array(data.dim);
  for (let j = 0; j < data.dim; j++) {
    const s = count[j] > 1 ? Math.sqrt(sq[j] / (count[j] - 1)) : 0;
    std[j] = s > 1e-12 ? s : 1;
  }
  return { mean, std };
}

/** Returns a standardised copy; the inverse of a fitted standardiser is `unstandardise`. */
export function standardise(data: Dataset, s: Standardiser): Dataset {
  const x = new Float32Array(data.x.length);
  for (let r = 0; r < data.n; r++) {
    for (let j = 0; j < data.dim; j++) {
      const v = data.x[r * data.dim + j];
      x[r * data.dim + j] = Number.isNaN(v) ? 0 : (v - s.mean[j]) / s.std[j];
    }
  }
  return { ...data, x };
}

export function unstandardise(values: Float32Array, dim: number, s: Standardiser): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] * s.std[i % dim] + s.mean[i % dim];
  return out;
}
