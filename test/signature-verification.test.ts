// Ed25519 verification with its memo of verified signatures (privacy/signature-verification.ts): a signature
// checked once is accepted again, and anything that differs in one bit from a signature already found valid
// (message, signature or key) is still verified and refused, before and after the memo fills and evicts.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateIdentity, verifySignature } from '@dpfed/privacy/identity';
import tweetnacl from 'tweetnacl';

const flip = (bytes: Uint8Array, bit: number) => {
  const out = new Uint8Array(bytes);
  out[bit >> 3] ^= 1 << (bit & 7);
  return out;
};

describe('verifySignature', () => {
  it('accepts a valid signature every time and refuses every one-bit change of key, message or signature', () => {
    const key = generateIdentity();
    const other = generateIdentity();
    const message = randomBytes(200);
    const signature = key.sign(message);
    // the signature is the one tweetnacl makes (node:crypto and tweetnacl agree on Ed25519)
    expect(tweetnacl.sign.detached.verify(message, signature, key.publicKey)).toBe(true);
    for (let i = 0; i < 3; i++) expect(verifySignature(key.publicKey, message, signature)).toBe(true);
    for (const bit of [0, 7, 100, 511]) expect(verifySignature(key.publicKey, message, flip(signature, bit))).toBe(false);
    for (const bit of [0, 800, 1599]) expect(verifySignature(key.publicKey, flip(message, bit), signature)).toBe(false);
    expect(verifySignature(other.publicKey, message, signature)).toBe(false);
    expect(verifySignature(flip(key.publicKey, 3), message, signature)).toBe(false);
    // moving bytes between message and signature does not name the same triple
    expect(verifySignature(key.publicKey, message.subarray(1), Buffer.concat([signature.subarray(1), message.subarray(0, 1)]))).toBe(false);
  });

  it('refuses malformed input without throwing', () => {
    const key = generateIdentity();
    const message = randomBytes(10);
    const signature = key.sign(message);
    expect(verifySignature(key.publicKey, message, signature.subarray(0, 63))).toBe(false);
    expect(verifySignature(key.publicKey.subarray(0, 31), message, signature)).toBe(false);
    expect(verifySignature(new Uint8Array(32), message, signature)).toBe(false);
    expect(verifySignature(key.publicKey, message, 'x'.repeat(64) as unknown as Uint8Array)).toBe(false);
  });

  it('keeps answering right once the memo has evicted old entries', () => {
    const key = generateIdentity();
    const first = randomBytes(32);
    const firstSignature = key.sign(first);
    expect(verifySignature(key.publicKey, first, firstSignature)).toBe(true);
    for (let i = 0; i < 5000; i++) {
      const m = randomBytes(16);
      expect(verifySignature(key.publicKey, m, key.sign(m))).toBe(true);
    }
    expect(verifySignature(key.publicKey, first, firstSignature)).toBe(true);
    expect(verifySignature(key.publicKey, flip(first, 1), firstSignature)).toBe(false);
  });
});
