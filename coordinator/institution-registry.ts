// Registered institutions: identity keys, sessions, declared budgets and liveness. Only enrolled
// institutions get this far (enrolment.ts): admit() is the first step of every registration, and every
// call after Register is checked here, against its session and against the enrolment as it is now.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { verifySignature } from '../privacy/identity.ts';
import { INSTITUTION_ID_PATTERN, registrationMessage } from '../proto/registration.ts';
import type { Envelope, RegisterRequest } from '../proto/wire.ts';
import type { CoordinatorStore } from './coordinator-store.ts';
import type { Enrolment, PeerCertificateId } from './enrolment.ts';
import { invalidArgument, permissionDenied, unauthenticated } from './rpc-error.ts';

export interface Institution {
  id: string;
  publicKey: Uint8Array;
  session: Buffer;
  budget: { epsilon: number; delta: number } | null;
  /** The public example count the institution declared at registration (null: none); never its true row count. */
  declaredExamples: number | null;
  lastSeen: number;
  /** Set when the institution declined for budget reasons, or the coordinator refused it. */
  excludedReason: string | null;
  /**
   * Set when the institution was dropped from a round for silence (it did not fetch its task in time, or
   * its Session stream closed): it is not sampled again until it shows life (a pull or a result), so it
   * cannot stall later rounds. Heartbeats alone do not clear it.
   */
  unresponsive: string | null;
}

export class InstitutionRegistry {
  private readonly institutions = new Map<string, Institution>();

  constructor(
    private readonly store: CoordinatorStore,
    private readonly livenessMs: number,
    private readonly enrolment: Enrolment,
  ) {}

  /**
   * The allow-list step of a registration, taken before register() looks at anything else: a request
   * whose id is not enrolled, is revoked, comes with another key, or (mutual TLS) over a certificate
   * bound to another id is refused with PERMISSION_DENIED. A malformed id or key is left to register(),
   * which refuses it with INVALID_ARGUMENT naming the field.
   */
  admit(request: Pick<RegisterRequest, 'institutionId' | 'identityPublicKey'>, peer: PeerCertificateId): void {
    if (!INSTITUTION_ID_PATTERN.test(request.institutionId) || request.identityPublicKey?.length !== 32) return;
    this.enrolment.admitRegistration(request.institutionId, request.identityPublicKey, peer);
  }

  register(request: RegisterRequest): Institution {
    const id = request.institutionId;
    if (!INSTITUTION_ID_PATTERN.test(id)) throw invalidArgument(`institution_id: "${id}" is not a valid id (letters, digits, . _ -; at most 64)`);
    if (request.identityPublicKey.length !== 32) throw invalidArgument('identity_public_key: expected a 32-byte Ed25519 key');
    if (request.nonce.length < 16) throw invalidArgument('nonce: expected at least 16 random bytes');
    if (!verifySignature(request.identityPublicKey, registrationMessage(id, request.identityPublicKey, request.nonce), request.signature)) {
      throw unauthenticated('signature: registration signature does not verify with identity_public_key');
    }
    const pinned = this.store.institutionKey(id);
    if (pinned && !Buffer.from(pinned).equals(Buffer.from(request.identityPublicKey))) {
      throw permissionDenied(`identity_public_key: institution "${id}" is registered with a different identity key`);
    }
    const budget = request.budget && request.budget.epsilon > 0 ? { epsilon: request.budget.epsilon, delta: request.budget.delta } : null;
    if (budget && !(budget.delta > 0 && budget.delta < 1)) throw invalidArgument('budget.delta: must be in (0, 1)');
    const declared = Number(request.declaredExamples ?? 0);
    if (!Number.isSafeInteger(declared) || declared < 0) throw invalidArgument('declared_examples: must be a non-negative integer (0 = none declared)');
    const declaredExamples = declared > 0 ? declared : null;
    this.store.upsertInstitution(id, request.identityPublicKey, budget, declaredExamples);
    const previous = this.institutions.get(id);
    const institution: Institution = {
      id,
      publicKey: new Uint8Array(request.identityPublicKey),
      session: randomBytes(16),
      budget,
      declaredExamples,
      lastSeen: Date.now(),
      // an institution enrolled again after a revocation starts afresh; other exclusions stay
      excludedReason: previous?.excludedReason === 'revoked' ? null : (previous?.excludedReason ?? null),
      unresponsive: null,
    };
    this.institutions.set(id, institution);
    return institution;
  }

  /** Checks an envelope's institution and session; refreshes liveness. */
  authenticate(envelope: Envelope | null | undefined): Institution {
    if (!envelope) throw invalidArgument('envelope: missing');
    const institution = this.institutions.get(envelope.institutionId);
    if (!institution) throw invalidArgument(`envelope.institution_id: unknown institution "${envelope.institutionId}" (register first)`);
    const session = Buffer.from(envelope.session ?? []);
    if (session.length !== institution.session.length || !timingSafeEqual(session, institution.session)) {
      throw unauthenticated(`envelope.session: not the current session of "${envelope.institutionId}" (register again)`);
    }
    this.enrolment.checkActive(institution.id, institution.publicKey);
    institution.lastSeen = Date.now();
    return institution;
  }

  /**
   * Ends the registration of institutions whose enrolment was revoked: they are no longer live (never
   * sampled again) and their next call is refused. Returns the ids it ended.
   */
  dropRevoked(): string[] {
    const revoked = this.enrolment.notActive([...this.institutions.keys()]).filter((id) => this.institutions.get(id)?.excludedReason !== 'revoked');
    for (const id of revoked) this.exclude(id, 'revoked');
    return revoked;
  }

  get(id: string): Institution | undefined {
    return this.institutions.get(id);
  }

  all(): Institution[] {
    return [...this.institutions.values()];
  }

  /** Institutions seen recently (or waiting in a poll), not excluded and not marked unresponsive. */
  live(isWaiting: (id: string) => boolean): Institution[] {
    const now = Date.now();
    return this.all().filter((i) => !i.excludedReason && !i.unresponsive && (isWaiting(i.id) || now - i.lastSeen <= this.livenessMs));
  }

  /** Open Session streams per institution (a reconnecting client may briefly have two). */
  private readonly streams = new Map<string, number>();

  streamOpened(id: string): void {
    this.streams.set(id, (this.streams.get(id) ?? 0) + 1);
  }

  /** A Session stream of `id` closed; returns how many it still has open. */
  streamClosed(id: string): number {
    const left = Math.max(0, (this.streams.get(id) ?? 0) - 1);
    if (left === 0) this.streams.delete(id);
    else this.streams.set(id, left);
    return left;
  }

  /** Marks an institution as silent (see Institution.unresponsive): not sampled until it shows life. */
  markUnresponsive(id: string, reason: string): void {
    const institution = this.institutions.get(id);
    if (institution) institution.unresponsive = reason;
  }

  /** The institution pulled a task or sent a result: it may be sampled again. */
  showedLife(institution: Institution): void {
    institution.unresponsive = null;
  }

  exclude(id: string, reason: string): void {
    const institution = this.institutions.get(id);
    if (institution) institution.excludedReason = reason;
  }
}
