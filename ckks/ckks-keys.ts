// The federation's CKKS key pair: whoever holds the secret key can decrypt any ciphertext (see ckks.ts).
import { loadCkksRuntime } from './ckks-runtime.ts';

export interface CkksKeyPair {
  /** Serialised SEAL public key: give it to every encrypting institution. */
  publicKey: Uint8Array;
  /** Serialised SEAL secret key: whoever holds it can decrypt any ciphertext. */
  secretKey: Uint8Array;
}

/** A fresh federation key pair (SEAL key generation; randomness from node:crypto via the wasm runtime). */
export async function createFederationKeys(): Promise<CkksKeyPair> {
  const rt = await loadCkksRuntime();
  const generator = rt.seal.KeyGenerator(rt.context);
  const secret = generator.secretKey();
  const pub = generator.createPublicKey();
  try {
    return { publicKey: pub.saveArray(rt.seal.ComprModeType.none), secretKey: secret.saveArray(rt.seal.ComprModeType.none) };
  } finally {
    pub.delete();
    secret.delete();
    generator.delete();
  }
}
