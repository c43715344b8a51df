import { describe, expect, it } from 'vitest';
import { validateAggregatedSum, validateClientUpdate, validateUpdate, validateWeight } from '@dpfed/coordinator/update-validation';

describe('validateUpdate', () => {
  it('accepts a finite Float32Array of the right length', () => {
    expect(() => validateUpdate(new Float32Array([0, -1.5, 3e38, 1e-45]), 4)).not.toThrow();
    expect(() => validateUpdate(new Float32Array(0), 0)).not.toThrow();
  });

  it('names a wrong length', () => {
    expect(() => validateUpdate(new Float32Array(3), 4)).toThrow(/wrong length, 3 values where the model has 4 parameters/);
  });

  it('names the index of NaN and of ±Infinity, in the unrolled body and in the tail', () => {
    const values = new Float32Array(11);
    values[5] = Number.NaN;
    expect(() => validateUpdate(values, 11)).toThrow(/index 5 is NaN/);
    values[5] = 0;
    values[0] = Number.POSITIVE_INFINITY;
    expect(() => validateUpdate(values, 11)).toThrow(/index 0 is Infinity/);
    values[0] = 0;
    values[10] = Number.NEGATIVE_INFINITY;
    expect(() => validateUpdate(values, 11)).toThrow(/index 10 is -Infinity/);
    values[10] = 0;
    values[9] = Number.NaN;
    values[7] = Number.NaN;
    expect(() => validateUpdate(values, 11)).toThrow(/index 7 is NaN/);
  });

  it('tells non-finite values from every other bit pattern (the bit test), at every position of a block of eight', () => {
    const finite = [0, -0, 1, -1, 3.4028234663852886e38, -3.4028234663852886e38, 1e-45, -1e-45, 1.1754942e-38, 2 ** 127];
    const values = new Float32Array(64);
    for (let i = 0; i < values.length; i++) values[i] = finite[i % finite.length];
    expect(() => validateUpdate(values, 64)).not.toThrow();
    const bits = new Uint32Array(values.buffer);
    for (let at = 40; at < 48; at++) {
      for (const pattern of [0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff]) {
        const saved = bits[at];
        bits[at] = pattern;
        expect(() => validateUpdate(values, 64)).toThrow(new RegExp(`index ${at} is (NaN|-?Infinity)`));
        bits[at] = saved;
      }
    }
  });

  it('refuses something that is not a Float32Array', () => {
    expect(() => validateUpdate(new Float64Array(2), 2)).toThrow(/expected a Float32Array, got Float64Array/);
    expect(() => validateUpdate([1, 2], 2)).toThrow(/expected a Float32Array, got Array/);
    expect(() => validateUpdate(undefined, 2)).toThrow(/expected a Float32Array, got undefined/);
  });
});

describe('validateWeight and validateClientUpdate', () => {
  it('refuses non-positive or non-finite weights', () => {
    expect(() => validateWeight(12)).not.toThrow();
    for (const w of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '3']) expect(() => validateWeight(w)).toThrow(/weight must be a positive finite number/);
  });

  it('puts the institution in the message', () => {
    const delta = new Float32Array([1, Number.NaN]);
    expect(() => validateClientUpdate({ institutionId: 'bank-7', weight: 10, delta }, 2)).toThrow(/^bank-7: update: value at index 1 is NaN/);
    expect(() => validateClientUpdate({ institutionId: 'bank-8', weight: -2, delta: new Float32Array(2) }, 2)).toThrow(/^bank-8: update: weight/);
    expect(() => validateClientUpdate({ institutionId: '', weight: 1, delta: new Float32Array(2) }, 2)).toThrow(/institutionId is missing/);
    expect(() => validateClientUpdate({ institutionId: 'bank-9', weight: 1, delta: new Float32Array(2) }, 2)).not.toThrow();
  });
});

describe('validateAggregatedSum', () => {
  it('checks length, total weight, count and finiteness', () => {
    const ok = { weightedDeltaSum: new Float32Array([1, 2]), totalWeight: 3, count: 2 };
    expect(() => validateAggregatedSum(ok, 2)).not.toThrow();
    expect(() => validateAggregatedSum(ok, 3)).toThrow(/2 values, the model has 3/);
    expect(() => validateAggregatedSum({ ...ok, totalWeight: -1 }, 2)).toThrow(/totalWeight/);
    expect(() => validateAggregatedSum({ ...ok, count: 0 }, 2)).toThrow(/count must be a positive integer/);
    expect(() => validateAggregatedSum({ ...ok, weightedDeltaSum: new Float32Array([1, Number.NaN]) }, 2)).toThrow(/index 1 is NaN/);
  });

  it('takes a float64 sum (the arrival sum of a plain round) and checks it the same way', () => {
    expect(() => validateAggregatedSum({ weightedDeltaSum: new Float64Array([1, 2]), totalWeight: 3, count: 2 }, 2)).not.toThrow();
    expect(() => validateAggregatedSum({ weightedDeltaSum: new Float64Array([Number.POSITIVE_INFINITY, 2]), totalWeight: 3, count: 2 }, 2)).toThrow(/index 0 is Infinity/);
    expect(() => validateAggregatedSum({ weightedDeltaSum: [1, 2] as unknown as Float64Array, totalWeight: 3, count: 2 }, 2)).toThrow(/Float32Array or Float64Array, got Array/);
  });
});
