// Shape checks of the SecAgg messages a client sends the server: its encrypted shares (one per neighbour,
// fixed sizes) and its unmask answer (one share about each expected institution, every share a valid field
// element). Each check throws an Error naming the problem; the server turns it into the sender's exclusion.
import { SHARE_CIPHERTEXT_BYTES, SHARE_NONCE_BYTES, type EncryptedShare, type UnmaskBody } from '@dpfed/privacy/secagg-keys';
import { shareValueToField } from '@dpfed/privacy/shamir';

/** `shares` hold exactly one well-formed share from `from` for each of its `neighbours`. */
export function checkEncryptedShares(from: string, shares: readonly EncryptedShare[], neighbours: ReadonlySet<string>): void {
  if (!Array.isArray(shares)) throw new Error('shares must be an array');
  const seen = new Set<string>();
  for (const share of shares) {
    if (share?.fromInstitution !== from) throw new Error(`share labelled as from ${share?.fromInstitution}`);
    if (!neighbours.has(share.toInstitution)) throw new Error(`share addressed to ${share.toInstitution}, not a neighbour`);
    if (seen.has(share.toInstitution)) throw new Error(`two shares for ${share.toInstitution}`);
    if (!(share.nonce instanceof Uint8Array) || share.nonce.length !== SHARE_NONCE_BYTES) throw new Error(`share for ${share.toInstitution}: nonce must be ${SHARE_NONCE_BYTES} bytes`);
    if (!(share.ciphertext instanceof Uint8Array) || share.ciphertext.length !== SHARE_CIPHERTEXT_BYTES) {
      throw new Error(`share for ${share.toInstitution}: ciphertext must be ${SHARE_CIPHERTEXT_BYTES} bytes`);
    }
    seen.add(share.toInstitution);
  }
  if (seen.size !== neighbours.size) throw new Error(`sent ${seen.size} shares for ${neighbours.size} neighbours`);
}

/** The unmask answer has both share lists, every share an institution id and bytes, and a 64-byte signature. */
export function checkUnmaskShape(body: UnmaskBody): void {
  if (!body || !Array.isArray(body.selfMaskShares) || !Array.isArray(body.maskKeyShares)) throw new Error('unmask answer must carry selfMaskShares and maskKeyShares arrays');
  for (const s of [...body.selfMaskShares, ...body.maskKeyShares]) {
    if (typeof s?.aboutInstitution !== 'string' || !(s.value instanceof Uint8Array)) throw new Error('unmask answer has a malformed share (aboutInstitution string and value bytes required)');
  }
  if (!(body.signature instanceof Uint8Array) || body.signature.length !== 64) throw new Error('unmask answer signature must be 64 bytes');
}

/** One share of `kind` about each institution in `expected`, none other, each a valid field element. */
export function checkUnmaskShares(list: UnmaskBody['selfMaskShares'], expected: ReadonlySet<string>, kind: string): void {
  const seen = new Set<string>();
  for (const s of list) {
    if (!expected.has(s.aboutInstitution)) throw new Error(`unexpected ${kind} share about ${s.aboutInstitution}`);
    if (seen.has(s.aboutInstitution)) throw new Error(`two ${kind} shares about ${s.aboutInstitution}`);
    try {
      shareValueToField(s.value);
    } catch (error) {
      throw new Error(`${kind} share about ${s.aboutInstitution}: ${(error as Error).message}`);
    }
    seen.add(s.aboutInstitution);
  }
  if (seen.size !== expected.size) throw new Error(`sent ${seen.size} ${kind} shares, expected ${expected.size}`);
}
