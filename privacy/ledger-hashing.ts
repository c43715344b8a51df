// How the ledger's chain is hashed and signed: the genesis hash, each row kind's canonical bytes, a row's
// hash over its predecessor's, and the bytes the countersigner signs for a row and for the head.
import { createHash } from 'node:crypto';
import { canonicalEventBytes, encodeCanonical } from './ledger-event.ts';
import type { AnyRow, InstitutionRow, LedgerRow, RefusalRow } from './ledger-rows.ts';
import { receiptBytes } from './receipts.ts';

export const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const HEX_RE = /^(?:[0-9a-f]{2})*$/;
export function unhex(text: string, name: string, length?: number): Uint8Array {
  if (typeof text !== 'string' || !HEX_RE.test(text)) throw new Error(`${name} is not lowercase hex`);
  const bytes = new Uint8Array(Buffer.from(text, 'hex'));
  if (length !== undefined && bytes.length !== length) throw new Error(`${name} must be ${length} bytes, got ${bytes.length}`);
  return bytes;
}
export const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

export function genesisHash(countersignerPublicKey: Uint8Array): Uint8Array {
  return sha256(encodeCanonical('dpfed.v1/ledger-genesis', [{ b: countersignerPublicKey }]));
}

function institutionRowBytes(r: InstitutionRow): Uint8Array {
  return encodeCanonical('dpfed.v1/ledger-row/institution', [
    { u: r.seq },
    { s: r.institutionId },
    { b: unhex(r.publicKey, 'public_key', 32) },
    { f: r.budget.epsilon },
    { f: r.budget.delta },
    { s: r.time },
  ]);
}

function eventRowBytes(r: LedgerRow): Uint8Array {
  return encodeCanonical('dpfed.v1/ledger-row/event', [{ u: r.seq }, { b: canonicalEventBytes(r.event) }]);
}

function refusalRowBytes(r: RefusalRow): Uint8Array {
  return encodeCanonical('dpfed.v1/ledger-row/refusal', [{ u: r.seq }, { s: r.institutionId }, { s: r.runId }, { u: r.round }, { s: r.reason }, { f: r.projectedEpsilon }, { s: r.time }]);
}

export function rowHashOf(entry: AnyRow, prevHash: Uint8Array): Uint8Array {
  if (entry.kind === 'institution') return sha256(prevHash, institutionRowBytes(entry.row));
  if (entry.kind === 'refusal') return sha256(prevHash, refusalRowBytes(entry.row));
  return sha256(prevHash, eventRowBytes(entry.row), unhex(entry.row.institutionSignature, 'institution_signature', 64));
}

export const countersignBytes = (rowHash: Uint8Array) => encodeCanonical('dpfed.v1/ledger-countersign', [{ b: rowHash }]);
export const headBytes = receiptBytes;
