// Reproducible randomness for what the seed is meant to fix: data splits, model initialisation and
// client sampling. Privacy noise, masks and keys never come from here (they use node:crypto directly).
// The generator is AES-256-CTR keyed by SHA-256 of the seed: a seeded CSPRNG, so even these choices are
// unpredictable to anyone without the seed.
import { createCipheriv, createHash } from 'node:crypto';

export class SeededRandom {
  private readonly cipher;
  private buffer = new Uint32Array(0);
  private position = 0;

  constructor(seed: string | number) {
    const key = createHash('sha256').update(`dpfed-seed:${seed}`).digest();
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    if (this.position >= this.buffer.length) {
      const bytes = this.cipher.update(Buffer.alloc(4096));
      this.buffer = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      this.position = 0;
    }
    return this.buffer[this.position++];
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A standard normal draw (Box-Muller); for initialisation only, never for privacy noise. */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[] | Int32Array | Uint32Array): void {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t as never;
    }
  }

  /** A child generator whose stream is independent of this one's, named for its purpose. */
  fork(label: string): SeededRandom {
    return new SeededRandom(`${this.nextUint32()}:${this.nextUint32()}:${label}`);
  }
}
