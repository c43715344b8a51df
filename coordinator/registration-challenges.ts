// Register's challenges: the coordinator hands each institution a fresh random nonce (Challenge), which the
// institution signs into its registration declaration. A nonce is single use, bound to the institution id it
// was issued for, and expires after `ttlMs`, so captured registration bytes cannot be replayed.
import { randomBytes } from 'node:crypto';
import { CHALLENGE_NONCE_BYTES } from '@dpfed/proto/registration';
import { failedPrecondition, permissionDenied, unauthenticated } from './rpc-error.ts';

export const CHALLENGE_TTL_MS = 60_000;
/** Outstanding challenges kept per institution id (the oldest is dropped beyond this). */
const PER_INSTITUTION = 8;
/** Outstanding challenges kept in all (the oldest is dropped beyond this). */
const TOTAL = 10_000;

export interface IssuedChallenge {
  nonce: Buffer;
  institutionId: string;
  /** seq of the coordinator's newest receipt of the institution's own ledger when the challenge was issued. */
  receiptSeq: number;
  issuedAt: number;
  expiresAt: number;
}

export class RegistrationChallenges {
  /** Outstanding challenges by nonce (hex), oldest first (Map keeps insertion order). */
  private readonly open = new Map<string, IssuedChallenge>();
  /** Nonces already presented, until they would have expired: a replay is named as one. */
  private readonly used = new Map<string, number>();

  constructor(
    private readonly ttlMs = CHALLENGE_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  issue(institutionId: string, receiptSeq: number): IssuedChallenge {
    this.prune();
    const mine = [...this.open.values()].filter((c) => c.institutionId === institutionId);
    if (mine.length >= PER_INSTITUTION) this.open.delete(mine[0].nonce.toString('hex'));
    if (this.open.size >= TOTAL) this.open.delete(this.open.keys().next().value as string);
    const issuedAt = this.now();
    const challenge = { nonce: randomBytes(CHALLENGE_NONCE_BYTES), institutionId, receiptSeq, issuedAt, expiresAt: issuedAt + this.ttlMs };
    this.open.set(challenge.nonce.toString('hex'), challenge);
    return challenge;
  }

  /** Takes the challenge of `nonce` for `institutionId` (it can never be used again), or throws naming `nonce`. */
  consume(nonce: Uint8Array, institutionId: string): IssuedChallenge {
    this.prune();
    const key = Buffer.from(nonce ?? []).toString('hex');
    if (nonce?.length !== CHALLENGE_NONCE_BYTES) throw unauthenticated(`nonce: expected the ${CHALLENGE_NONCE_BYTES}-byte nonce of a Challenge, got ${nonce?.length ?? 0} bytes`, 'NONCE_INVALID');
    if (this.used.has(key)) throw unauthenticated('nonce: already used; a registration is accepted once (replayed registration?): ask Challenge for a new nonce', 'NONCE_INVALID');
    const challenge = this.open.get(key);
    if (!challenge) throw unauthenticated('nonce: not issued by this coordinator, or expired and forgotten: ask Challenge for a new nonce', 'NONCE_INVALID');
    this.open.delete(key);
    this.used.set(key, challenge.expiresAt);
    if (challenge.institutionId !== institutionId) throw permissionDenied(`nonce: issued for institution "${challenge.institutionId}", not "${institutionId}"`);
    const now = this.now();
    if (now > challenge.expiresAt) throw failedPrecondition(`nonce: expired ${now - challenge.expiresAt} ms ago (valid ${this.ttlMs} ms): ask Challenge for a new nonce`);
    return challenge;
  }

  private prune(): void {
    const now = this.now();
    // A nonce is remembered as used a little longer than it could have been valid, so a late replay is still named.
    for (const [key, expiresAt] of this.used) if (now > expiresAt + this.ttlMs) this.used.delete(key);
    for (const [key, c] of this.open) if (now > c.expiresAt + this.ttlMs) this.open.delete(key);
  }
}
