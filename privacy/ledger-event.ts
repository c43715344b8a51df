// One privacy event as the ε ledger records it (the PrivacyEvent message of proto/dpfed/v1/federation.proto,
// without its signature), its canonical bytes, and the institution's Ed25519 signature over those bytes.
//
// Canonical encoding (used for events and, through encodeCanonical, for every ledger row): the UTF-8 domain
// string, one 0x00 byte, then each field in a fixed order as a one-byte type tag followed by
//   's' string: uint32 big-endian byte length, UTF-8 bytes (lone surrogates are refused, so no two strings
//       share an encoding)
//   'b' bytes:  uint32 big-endian length, the bytes
//   'f' double: IEEE-754 float64 big-endian (NaN refused; -0 written as +0)
//   'u' integer: uint64 big-endian (non-negative safe integers only)
// Every field is self-delimiting, so the encoding is unambiguous and identical on every machine.
import { verifySignature, type IdentityKey } from './identity.ts';

/**
 * The release an event accounts for: record-level training (DP-SGD), client-level training (DP-FedAvg),
 * a private evaluation of a candidate model on the institution's validation rows (the Gaussian
 * mechanism on its class histograms: sample rate 1, one step, clip norm = the sensitivity 1; see
 * privacy/evaluation-mechanism.ts), or the cross-site evaluation of a run's final model (the same
 * mechanism, the institution's own histograms released alone, once per run, at the last round). Being
 * part of the ledger's (institution, run, round, mode) key, releases of the same round are separate
 * rows, and all of them compose into ε.
 */
export type LedgerMode = 'record' | 'client' | 'evaluation' | 'cross-site';
export const LEDGER_MODES: readonly LedgerMode[] = ['record', 'client', 'evaluation', 'cross-site'];

export interface LedgerEvent {
  institutionId: string;
  runId: string;
  /** Federation round the event belongs to (uint32). */
  round: number;
  mode: LedgerMode;
  /** Poisson sampling rate q in (0, 1]: examples per step (record) or institutions per round (client). */
  sampleRate: number;
  /** Noise multiplier σ > 0 (noise standard deviation = σ · clip norm). */
  noiseMultiplier: number;
  /** Number of noisy steps (positive integer). */
  steps: number;
  /** L2 clip norm C > 0 (per example in record mode, per update in client mode). */
  clipNorm: number;
  /** δ the institution accounts this event at, in (0, 1). */
  delta: number;
  /** Model version the event trained from (non-negative integer). */
  modelVersion: number;
  /** ISO-8601 time, e.g. 2024-05-01T12:00:00.000Z. */
  time: string;
}

export const EVENT_DOMAIN = 'dpfed.v1/privacy-event';

export type CanonicalField =
  | { s: string }
  | { b: Uint8Array }
  | { f: number }
  | { u: number };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** Deterministic, self-delimiting encoding of `fields` under `domain` (see the file header). */
export function encodeCanonical(domain: string, fields: readonly CanonicalField[]): Uint8Array {
  const parts: Buffer[] = [Buffer.from(domain, 'utf8'), Buffer.from([0])];
  const lengthPrefixed = (tag: string, bytes: Uint8Array) => {
    const head = Buffer.alloc(5);
    head.write(tag, 0, 'latin1');
    head.writeUInt32BE(bytes.length, 1);
    parts.push(head, Buffer.from(bytes));
  };
  for (const field of fields) {
    if ('s' in field) {
      if (typeof field.s !== 'string' || LONE_SURROGATE.test(field.s)) throw new Error('canonical encoding: string field is not well-formed text');
      lengthPrefixed('s', Buffer.from(field.s, 'utf8'));
    } else if ('b' in field) {
      lengthPrefixed('b', field.b);
    } else if ('f' in field) {
      if (typeof field.f !== 'number' || Number.isNaN(field.f)) throw new Error('canonical encoding: float field is NaN or not a number');
      const out = Buffer.alloc(9);
      out.write('f', 0, 'latin1');
      out.writeDoubleBE(field.f === 0 ? 0 : field.f, 1);
      parts.push(out);
    } else {
      if (!Number.isSafeInteger(field.u) || field.u < 0) throw new Error(`canonical encoding: integer field must be a non-negative safe integer, got ${field.u}`);
      const out = Buffer.alloc(9);
      out.write('u', 0, 'latin1');
      out.writeBigUInt64BE(BigInt(field.u), 1);
      parts.push(out);
    }
  }
  return new Uint8Array(Buffer.concat(parts));
}

function checkId(value: unknown, name: string): void {
  if (typeof value !== 'string' || value.length === 0) throw new Error(`ledger event: ${name} must be a non-empty string`);
  if (value.length > 256) throw new Error(`ledger event: ${name} is longer than 256 characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value) || LONE_SURROGATE.test(value)) throw new Error(`ledger event: ${name} contains control characters or malformed text`);
}

function checkNumber(value: unknown, name: string, ok: (x: number) => boolean, expected: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) {
    throw new Error(`ledger event: ${name} must be ${expected}, got ${typeof value === 'number' ? value : JSON.stringify(value)}`);
  }
}

/** Throws an Error naming the first bad field; otherwise `e` is a well-formed LedgerEvent. */
export function validateLedgerEvent(e: unknown): asserts e is LedgerEvent {
  if (!e || typeof e !== 'object') throw new Error('ledger event: expected an object');
  const v = e as Record<string, unknown>;
  checkId(v.institutionId, 'institutionId');
  checkId(v.runId, 'runId');
  checkNumber(v.round, 'round', (x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff, 'an integer in [0, 2^32)');
  if (!LEDGER_MODES.includes(v.mode as LedgerMode)) throw new Error(`ledger event: mode must be "record", "client", "evaluation" or "cross-site", got ${JSON.stringify(v.mode)}`);
  checkNumber(v.sampleRate, 'sampleRate', (x) => x > 0 && x <= 1, 'in (0, 1]');
  checkNumber(v.noiseMultiplier, 'noiseMultiplier', (x) => x > 0, 'a positive number');
  checkNumber(v.steps, 'steps', (x) => Number.isSafeInteger(x) && x >= 1, 'a positive integer');
  checkNumber(v.clipNorm, 'clipNorm', (x) => x > 0, 'a positive number');
  checkNumber(v.delta, 'delta', (x) => x > 0 && x < 1, 'in (0, 1)');
  checkNumber(v.modelVersion, 'modelVersion', (x) => Number.isSafeInteger(x) && x >= 0, 'a non-negative integer');
  if (typeof v.time !== 'string' || !ISO_TIME.test(v.time) || !Number.isFinite(Date.parse(v.time))) {
    throw new Error(`ledger event: time must be an ISO-8601 date-time such as 2024-05-01T12:00:00.000Z, got ${JSON.stringify(v.time)}`);
  }
}

/** The event's fields in proto field order, as plain data (drops any extra properties). */
export function pickLedgerEvent(e: LedgerEvent): LedgerEvent {
  return {
    institutionId: e.institutionId,
    runId: e.runId,
    round: e.round,
    mode: e.mode,
    sampleRate: e.sampleRate,
    noiseMultiplier: e.noiseMultiplier,
    steps: e.steps,
    clipNorm: e.clipNorm,
    delta: e.delta,
    modelVersion: e.modelVersion,
    time: e.time,
  };
}

/** The bytes an institution signs: domain "dpfed.v1/privacy-event", then the fields in proto order. */
export function canonicalEventBytes(e: LedgerEvent): Uint8Array {
  validateLedgerEvent(e);
  return encodeCanonical(EVENT_DOMAIN, [
    { s: e.institutionId },
    { s: e.runId },
    { u: e.round },
    { s: e.mode },
    { f: e.sampleRate },
    { f: e.noiseMultiplier },
    { u: e.steps },
    { f: e.clipNorm },
    { f: e.delta },
    { u: e.modelVersion },
    { s: e.time },
  ]);
}

/** The institution's Ed25519 signature (64 bytes) over the canonical event bytes. */
export function signEvent(e: LedgerEvent, identity: IdentityKey): Uint8Array {
  return identity.sign(canonicalEventBytes(e));
}

/** True when `signature` is a valid Ed25519 signature by `publicKey` over this event; false for any bad input. */
export function verifyEventSignature(e: LedgerEvent, signature: Uint8Array, publicKey: Uint8Array): boolean {
  let bytes: Uint8Array;
  try {
    bytes = canonicalEventBytes(e);
  } catch {
    return false;
  }
  return verifySignature(publicKey, bytes, signature);
}
