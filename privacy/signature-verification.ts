// Ed25519 signature verification, with two bounded memos that make repeated checks of the same bytes cheap:
// - the public key objects: importing a raw key into node:crypto costs about a tenth of a verification,
//   and a federation verifies signatures of the same few dozen keys over and over;
// - the signatures already found valid: one party often checks the same signed bytes twice (an event
//   before it is appended and again inside the ledger's append, a receipt when it is made and when it is
//   kept). A valid signature stays valid, so a second check of identical (key, message, signature) bytes
//   may reuse the first answer. The memo is keyed by the SHA-256 of the three, length-delimited; only
//   successes are kept, so a forgery is verified (and refused) every time it is presented.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

/** Entries kept by each memo; the oldest is dropped first. */
const MEMO_ENTRIES = 4096;

const keyObjects = new Map<string, KeyObject>();
const verified = new Set<string>();

function remember<T>(memo: Map<string, T> | Set<string>, key: string, value?: T): void {
  if (memo.size >= MEMO_ENTRIES) memo.delete(memo.keys().next().value as string);
  if (memo instanceof Map) memo.set(key, value as T);
  else memo.add(key);
}

/** The node:crypto key object of a raw 32-byte Ed25519 public key. */
export function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32) throw new Error(`Ed25519 public key must be 32 bytes, got ${publicKey.length}`);
  const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64url');
  let key = keyObjects.get(x);
  if (!key) {
    // JWK import is about 10x faster than DER (SPKI) import of the same key
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    remember(keyObjects, x, key);
  }
  return key;
}

/** True when `signature` is a valid Ed25519 signature by `publicKey` (32 bytes) over `message`; false for any bad input. */
export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64 || !(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  // key and signature have fixed lengths, so the three concatenated name one (key, message, signature) triple
  const id = createHash('sha256').update(publicKey).update(signature).update(message).digest('base64');
  if (verified.has(id)) return true;
  let ok: boolean;
  try {
    ok = verify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
  if (ok) remember(verified, id);
  return ok;
}
