import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { combine, combineWithCoefficients, FIELD_PRIME, lagrangeAtZero, split, type ShamirShare } from '@dpfed/privacy/shamir';

const secret = () => new Uint8Array(randomBytes(32));

describe('Shamir secret sharing over GF(2^256 + 297)', () => {
  it('any t of n shares rebuild the secret', () => {
    const s = secret();
    const shares = split(s, 3, [1, 2, 3, 4, 5]);
    for (const subset of [
      [0, 1, 2],
      [2, 3, 4],
      [4, 0, 2],
      [1, 3, 4],
    ]) {
      expect(
        Buffer.from(
          combine(
            subset.map((i) => shares[i]),
            3,
          ),
        ),
      ).toEqual(Buffer.from(s));
    }
    expect(Buffer.from(combine(shares, 3))).toEqual(Buffer.from(s));
  });

  it('handles secrets at the edges of 32 bytes (all zero, all 0xff) and sparse x-coordinates', () => {
    for (const s of [new Uint8Array(32), new Uint8Array(32).fill(0xff)]) {
      const shares = split(s, 4, [7, 100, 3, 4000, 65]);
      expect(Buffer.from(combine([shares[4], shares[1], shares[0], shares[3]], 4))).toEqual(Buffer.from(s));
    }
  });

  it('t - 1 shares do not give the secret, and are refused', () => {
    const s = secret();
    const shares = split(s, 3, [1, 2, 3, 4]);
    expect(() => combine(shares.slice(0, 2), 3)).toThrow(/need at least 3 shares to rebuild the secret, got 2/);
    // Interpolating only two points (as if t were 2) gives something else.
    const wrong = combineWithCoefficients(lagrangeAtZero([1, 2]), [shares[0].value, shares[1].value]);
    expect(Buffer.from(wrong)).not.toEqual(Buffer.from(s));
  });

  it('shares of the same secret differ between splits (random coefficients)', () => {
    const s = secret();
    expect(Buffer.from(split(s, 2, [1, 2])[0].value)).not.toEqual(Buffer.from(split(s, 2, [1, 2])[0].value));
  });

  it('the Lagrange coefficients at zero sum to 1', () => {
    const sum = lagrangeAtZero([2, 5, 9, 11]).reduce((a, b) => (a + b) % FIELD_PRIME, 0n);
    expect(sum).toBe(1n);
  });

  it('refuses bad input with clear errors', () => {
    const s = secret();
    expect(() => split(new Uint8Array(31), 2, [1, 2])).toThrow(/secret must be 32 bytes/);
    expect(() => split(s, 3, [1, 2])).toThrow(/threshold 3 exceeds the number of shares 2/);
    expect(() => split(s, 0, [1, 2])).toThrow(/threshold must be a positive integer/);
    expect(() => split(s, 2, [1, 1, 2])).toThrow(/duplicate x-coordinate 1/);
    expect(() => split(s, 2, [0, 1])).toThrow(/x-coordinate must be an integer/);
    const shares = split(s, 2, [1, 2, 3]);
    expect(() => combine([shares[0], shares[0]], 2)).toThrow(/duplicate x-coordinate/);
    expect(() => combine([shares[0], { x: 2, value: new Uint8Array(5) }], 2)).toThrow(/share value must be 33 bytes/);
    expect(() => combine([shares[0], { x: 2, value: new Uint8Array(33).fill(0xff) }], 2)).toThrow(/not a field element/);
  });

  it('with verify, detects a share that is not on the polynomial', () => {
    const s = secret();
    const shares = split(s, 2, [1, 2, 3, 4]);
    const bad: ShamirShare = { x: 4, value: new Uint8Array(shares[3].value) };
    bad.value[32] ^= 1;
    expect(Buffer.from(combine([...shares.slice(0, 3)], 2, { verify: true }))).toEqual(Buffer.from(s));
    expect(() => combine([...shares.slice(0, 3), bad], 2, { verify: true })).toThrow(/share at x=4 is inconsistent/);
  });
});
