// The declaration an institution signs to register (RegisterRequest.signature in
// proto/dpfed/v1/federation.proto, which states the byte layout for clients in other languages).
//
// It binds, under the context string "dpfed.v1/register": the coordinator's single-use nonce (so captured bytes
// cannot be replayed), the institution id and identity key (so they cannot be reused under another id or
// key), the protocol version, the declared budget (so nobody can raise it without a new signature), the
// declared example count and data-schema hash, and the head of the institution's own ledger with the hash of
// its row at the seq the coordinator holds a receipt for (so a wiped, truncated or replaced ledger shows).
// The encoding is the canonical one of the ledger (canonical-encoding.ts): self-delimiting fields with
// one-byte type tags, lengths and integers big-endian.
import { encodeCanonical } from './canonical-encoding.ts';

export const REGISTER_CONTEXT = 'dpfed.v1/register';
/** Bytes of a Challenge nonce. */
export const CHALLENGE_NONCE_BYTES = 32;

export interface RegistrationDeclaration {
  nonce: Uint8Array;
  institutionId: string;
  identityPublicKey: Uint8Array;
  protocolVersion: number;
  /** null: no budget declared (written as ε = 0, δ = 0). */
  budget: { epsilon: number; delta: number } | null;
  declaredExamples: number;
  schemaHash: Uint8Array;
  ledgerHeadSeq: number;
  /** Empty when the institution keeps no ledger. */
  ledgerHeadHash: Uint8Array;
  /** The ChallengeResponse's receipt_seq. */
  receiptSeq: number;
  /** row_hash of the institution's ledger row at receiptSeq; empty when it has no such row. */
  anchorHash: Uint8Array;
}

/** The bytes the institution signs. Throws when a field cannot be encoded (e.g. a negative integer). */
export function registrationDeclaration(d: RegistrationDeclaration): Uint8Array {
  return encodeCanonical(REGISTER_CONTEXT, [
    { b: d.nonce },
    { s: d.institutionId },
    { b: d.identityPublicKey },
    { u: d.protocolVersion },
    { f: d.budget ? d.budget.epsilon : 0 },
    { f: d.budget ? d.budget.delta : 0 },
    { u: d.declaredExamples },
    { b: d.schemaHash },
    { u: d.ledgerHeadSeq },
    { b: d.ledgerHeadHash },
    { u: d.receiptSeq },
    { b: d.anchorHash },
  ]);
}

export const INSTITUTION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
