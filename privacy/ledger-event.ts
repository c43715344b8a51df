// One privacy event as the ε ledger records it (the PrivacyEvent message of proto/dpfed/v1/federation.proto,
// without its signature): its validation, its canonical bytes (proto/canonical-encoding.ts), and the
// institution's Ed25519 signature over those bytes.
import { encodeCanonical, LONE_SURROGATE } from '@dpfed/proto/canonical-encoding';
import { LEDGER_MODES, type LedgerEvent, type LedgerMode } from '@dpfed/proto/privacy-event';
import { verifySignature, type IdentityKey } from './identity.ts';

// The event's shape and its canonical encoding are defined in proto/ (the wire types use them too).
export { encodeCanonical, type CanonicalField } from '@dpfed/proto/canonical-encoding';
export { LEDGER_MODES, type LedgerEvent, type LedgerMode } from '@dpfed/proto/privacy-event';

export const EVENT_DOMAIN = 'dpfed.v1/privacy-event';

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function checkId(value: unknown, name: string): void {
  if (typeof value !== 'string' || value.length === 0) throw new Error(`ledger event: ${name} must be a non-empty string`);
  if (value.length > 256) throw new Error(`ledger event: ${name} is longer than 256 characters`);
  // eslint-disable-next-line no-control-regex
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the check is for control characters
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
