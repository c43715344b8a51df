// Ed25519 identity keys of institutions and of the coordinator. Raw 32-byte keys, the same bytes as
// tweetnacl's sign.keyPair.fromSeed; signing and verifying go through node:crypto (native, 20-100x faster
// here than tweetnacl in JS, identical signatures since Ed25519 is deterministic).
//
// Key files hold the 32-byte seed as 64 hex characters. They live in a key directory apart from the ledger
// files they sign (whoever can read a ledger should not thereby hold the key that countersigns it): by
// default $DPFED_KEY_DIR, else ~/.config/dpfed/keys/, created with mode 0700. Key files are written 0600
// and refused when group or others may read or write them.
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface IdentityKey {
  /** 32-byte Ed25519 seed (the secret). */
  readonly seed: Uint8Array;
  /** 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

export function identityFromSeed(seed: Uint8Array): IdentityKey {
  if (seed.length !== 32) throw new Error(`Ed25519 seed must be 32 bytes, got ${seed.length}`);
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32));
  return {
    seed: new Uint8Array(seed),
    publicKey,
    sign: (message) => new Uint8Array(sign(null, message, privateKey)),
  };
}

export function generateIdentity(): IdentityKey {
  return identityFromSeed(randomBytes(32));
}

export { verifySignature } from './signature-verification.ts';

/** The key directory: $DPFED_KEY_DIR when set, else ~/.config/dpfed/keys. */
export function defaultKeyDir(): string {
  return process.env.DPFED_KEY_DIR || join(homedir(), '.config', 'dpfed', 'keys');
}

/** Creates `dir` (and its parents) when absent, the directory itself with mode 0700. */
export function ensureKeyDir(dir: string): void {
  if (existsSync(dir)) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.platform !== 'win32') chmodSync(dir, 0o700);
}

/** An institution's identity key file in `keyDir`: `<id>.identity`. */
export function institutionKeyPath(keyDir: string, institutionId: string): string {
  return join(keyDir, `${institutionId}.identity`);
}

/** The coordinator key for the database `dbPath`, in `keyDir`: named after the database file and a hash of its
 * absolute path, so two coordinators' databases of the same name get different keys. */
export function coordinatorKeyPath(keyDir: string, dbPath: string): string {
  const name = basename(dbPath).replace(/[^A-Za-z0-9._-]/g, '_');
  const tag = createHash('sha256').update(resolve(dbPath)).digest('hex').slice(0, 12);
  return join(keyDir, `coordinator-${name}-${tag}.key`);
}

/** Throws when the key file at `path` may be read or written by group or others (POSIX only). */
export function checkKeyFilePermissions(path: string): void {
  if (process.platform === 'win32') return;
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    throw new Error(`key file ${path} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')}); it must be private: chmod 600 ${path}`);
  }
}

/** Loads the identity stored at `path` (hex seed), creating it (mode 0600, its directory 0700) when absent.
 * Refuses a key file that group or others may read or write. */
export function loadOrCreateIdentity(path: string): IdentityKey {
  if (!existsSync(path)) {
    ensureKeyDir(dirname(path));
    const identity = generateIdentity();
    try {
      writeFileSync(path, Buffer.from(identity.seed).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
      return identity;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // another process created it first: use theirs
    }
  }
  checkKeyFilePermissions(path);
  const hex = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`identity key file ${path}: expected 64 hex characters`);
  return identityFromSeed(Buffer.from(hex, 'hex'));
}
