// Builds a signed RegisterRequest from a coordinator's challenge: the declaration of proto/registration.ts
// (nonce, id, identity key, protocol version, budget, declared fields, own ledger head and the anchor row
// hash the challenge asks for), signed with the institution's identity key.
import type { IdentityKey } from '@dpfed/privacy/identity';
import { registrationDeclaration } from '@dpfed/proto/registration';
import { PROTOCOL_VERSION, type ChallengeResponse, type LedgerHeadMsg, type RegisterRequest } from '@dpfed/proto/wire';

export interface RegistrationFields {
  institutionId: string;
  identity: IdentityKey;
  budget: { epsilon: number; delta: number } | null;
  /** Public example count the institution declares (0: none; never its true row count). */
  declaredExamples?: number;
  /** SHA-256 of the institution's data schema, 32 bytes (proto/data-schema.ts schemaHash; empty: none). */
  schemaHash?: Uint8Array;
  clientVersion?: string;
  /** The institution's own ledger head, signed with its identity key (absent: it keeps no ledger). */
  ledgerHead?: LedgerHeadMsg | null;
  /** row_hash of its own ledger row at the challenge's receipt_seq (absent / undefined: no such row). */
  anchorHash?: Uint8Array;
}

export function signedRegistration(challenge: ChallengeResponse, f: RegistrationFields): RegisterRequest {
  const empty = new Uint8Array(0);
  const head = f.ledgerHead ?? undefined;
  const request: RegisterRequest = {
    institutionId: f.institutionId,
    identityPublicKey: f.identity.publicKey,
    protocolVersion: PROTOCOL_VERSION,
    budget: f.budget ?? undefined,
    clientVersion: f.clientVersion ?? 'dpfed-sdk/0.1.0',
    nonce: challenge.nonce,
    declaredExamples: f.declaredExamples ?? 0,
    schemaHash: f.schemaHash ?? empty,
    ledgerHead: head,
    anchorHash: f.anchorHash ?? empty,
    signature: empty,
  };
  request.signature = f.identity.sign(
    registrationDeclaration({
      nonce: request.nonce,
      institutionId: request.institutionId,
      identityPublicKey: request.identityPublicKey,
      protocolVersion: request.protocolVersion,
      budget: request.budget ?? null,
      declaredExamples: request.declaredExamples,
      schemaHash: request.schemaHash,
      ledgerHeadSeq: head?.seq ?? 0,
      ledgerHeadHash: head?.hash ?? empty,
      receiptSeq: challenge.receiptSeq,
      anchorHash: request.anchorHash,
    }),
  );
  return request;
}
