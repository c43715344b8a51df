// Registered institutions: identity keys, sessions, declared budgets and liveness. Only enrolled
// institutions get this far (enrolment.ts): admit() is the first step of both registration calls
// (Challenge and Register; coordinator/peer-admission.ts calls it at the gRPC edge with the TLS peer), and
// every call after Register is checked here, against its session and against the enrolment as it is now.
//
// Registering takes two calls: Challenge hands out a single-use nonce bound to the institution id
// (registration-challenges.ts); Register carries the institution's signature over a declaration that covers
// that nonce, its budget, declared fields and its own ledger head (proto/registration.ts). The ledger head is
// checked against the coordinator's receipt of that ledger (ledger-receipts.ts) before anything is recorded.
import { quoted } from '@dpfed/proto/text-excerpt';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { verifySignature } from '@dpfed/privacy/identity';
import { INSTITUTION_ID_PATTERN, registrationDeclaration } from '@dpfed/proto/registration';
import { PROTOCOL_VERSION, type ChallengeRequest, type ChallengeResponse, type Envelope, type RegisterRequest } from '@dpfed/proto/wire';
import type { CoordinatorStore } from './coordinator-store.ts';
import type { Enrolment, PeerCertificateId } from './enrolment.ts';
import type { CoordinatorReceipts } from './ledger-receipts.ts';
import { RegistrationChallenges } from './registration-challenges.ts';
import { failedPrecondition, invalidArgument, permissionDenied, unauthenticated } from './rpc-error.ts';
import { featureColumns, labelColumn, schemaHash, type DataSchema } from '@dpfed/proto/data-schema';

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

  private readonly challenges: RegistrationChallenges;

  constructor(
    private readonly store: CoordinatorStore,
    private readonly livenessMs: number,
    private readonly enrolment: Enrolment,
    private readonly receipts: CoordinatorReceipts,
    challenges?: RegistrationChallenges,
    /** The run's public data schema: sent with every challenge; a Register with another schema_hash is refused. */
    private readonly schema?: DataSchema,
  ) {
    this.challenges = challenges ?? new RegistrationChallenges();
    this.schemaJson = schema ? JSON.stringify(schema) : '';
    this.schemaHashHex = schema ? schemaHash(schema) : '';
  }

  private readonly schemaJson: string;
  private readonly schemaHashHex: string;

  /**
   * The allow-list step of Challenge and of Register, taken before challenge() or register() looks at
   * anything else: a request whose id is not enrolled, is revoked, comes with another key (Register; a
   * Challenge carries no key), or (mutual TLS) over a certificate bound to another id is refused with
   * PERMISSION_DENIED, so an unknown or revoked id never sees a nonce. A malformed id or key is left to
   * challenge() / register(), which refuse it with INVALID_ARGUMENT naming the field.
   */
  admit(request: { institutionId: string; identityPublicKey?: Uint8Array }, peer: PeerCertificateId): void {
    if (typeof request.institutionId !== 'string' || !INSTITUTION_ID_PATTERN.test(request.institutionId)) return;
    if (request.identityPublicKey === undefined) {
      this.enrolment.admitChallenge(request.institutionId, peer);
      return;
    }
    if (request.identityPublicKey?.length !== 32) return;
    this.enrolment.admitRegistration(request.institutionId, request.identityPublicKey, peer);
  }

  private checkId(id: string): void {
    if (typeof id !== 'string' || !INSTITUTION_ID_PATTERN.test(id)) throw invalidArgument(`institution_id: "${id}" is not a valid id (letters, digits, . _ -; at most 64)`);
  }

  /** Step 1 of registering: a fresh nonce for `institution_id`, and the seq of the receipt it must prove. */
  challenge(request: ChallengeRequest): ChallengeResponse {
    this.checkId(request.institutionId);
    const pinned = this.store.institutionKey(request.institutionId);
    const receiptSeq = pinned ? (this.receipts.institutionReceipt(request.institutionId, pinned)?.seq ?? 0) : 0;
    const issued = this.challenges.issue(request.institutionId, receiptSeq);
    return { nonce: issued.nonce, expiresInMs: issued.expiresAt - issued.issuedAt, receiptSeq, coordinatorPublicKey: this.receipts.coordinatorPublicKey, schemaJson: this.schemaJson };
  }

  /** Step 2: checks the signed declaration, the nonce and the ledger head, then records the registration. */
  register(request: RegisterRequest): Institution {
    const id = request.institutionId;
    this.checkId(id);
    if (request.identityPublicKey?.length !== 32) throw invalidArgument('identity_public_key: expected a 32-byte Ed25519 key');
    const challenge = this.challenges.consume(request.nonce, id);
    if (request.protocolVersion !== PROTOCOL_VERSION) throw invalidArgument(`protocol_version: ${request.protocolVersion} is not supported (this coordinator speaks ${PROTOCOL_VERSION})`);
    if (request.schemaHash?.length && request.schemaHash.length !== 32) {
      throw invalidArgument(`schema_hash: expected the 32-byte SHA-256 of the data schema (or none), got ${request.schemaHash.length} bytes`);
    }
    const budget = request.budget && request.budget.epsilon > 0 ? { epsilon: request.budget.epsilon, delta: request.budget.delta } : null;
    const head = request.ledgerHead ?? { seq: 0, hash: new Uint8Array(0), signature: new Uint8Array(0) };
    let declaration: Uint8Array;
    try {
      declaration = registrationDeclaration({
        nonce: request.nonce,
        institutionId: id,
        identityPublicKey: request.identityPublicKey,
        protocolVersion: request.protocolVersion,
        budget: request.budget ? { epsilon: request.budget.epsilon, delta: request.budget.delta } : null,
        declaredExamples: request.declaredExamples ?? 0,
        schemaHash: request.schemaHash ?? new Uint8Array(0),
        ledgerHeadSeq: head.seq,
        ledgerHeadHash: head.hash,
        receiptSeq: challenge.receiptSeq,
        anchorHash: request.anchorHash ?? new Uint8Array(0),
      });
    } catch (error) {
      throw invalidArgument(`declared_examples or ledger_head: ${(error as Error).message}`);
    }
    if (!verifySignature(request.identityPublicKey, declaration, request.signature ?? new Uint8Array(0))) {
      throw unauthenticated(
        'signature: does not verify with identity_public_key over the registration declaration (nonce, institution_id, identity_public_key, protocol_version, budget, declared_examples, schema_hash, ledger_head, receipt_seq, anchor_hash): a field was altered or signed wrongly',
      );
    }
    this.checkSchema(id, request.schemaHash);
    const pinned = this.store.institutionKey(id);
    if (pinned && !Buffer.from(pinned).equals(Buffer.from(request.identityPublicKey))) {
      throw permissionDenied(`identity_public_key: institution "${id}" is registered with a different identity key`);
    }
    if (budget && !(budget.delta > 0 && budget.delta < 1)) throw invalidArgument('budget.delta: must be in (0, 1)');
    const declared = Number(request.declaredExamples ?? 0);
    if (!Number.isSafeInteger(declared) || declared < 0) throw invalidArgument('declared_examples: must be a non-negative integer (0 = none declared)');
    const declaredExamples = declared > 0 ? declared : null;
    const publicKey = new Uint8Array(request.identityPublicKey);
    // Refuses (FAILED_PRECONDITION naming ledger_head) a ledger behind, missing or replaced; nothing recorded yet.
    const receipt = this.receipts.checkContinuity(id, publicKey, head, challenge.receiptSeq, request.anchorHash ?? new Uint8Array(0));
    this.store.db.transaction(() => {
      this.store.upsertInstitution(id, publicKey, budget, declaredExamples);
      if (receipt) this.receipts.keepInstitutionReceipt(receipt);
      if (budget) this.receipts.recordBudgetChange(id, publicKey, budget);
    })();
    const previous = this.institutions.get(id);
    const institution: Institution = {
      id,
      publicKey,
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

  /**
   * Refuses (FAILED_PRECONDITION naming schema_hash) a registration whose signed schema hash is not the
   * run's: its rows would be preprocessed differently from everyone else's. No check without a run schema.
   */
  private checkSchema(id: string, declared: Uint8Array | undefined): void {
    if (!this.schema) return;
    const hex = Buffer.from(declared ?? []).toString('hex');
    if (hex === this.schemaHashHex) return;
    const columns = featureColumns(this.schema).length;
    throw failedPrecondition(
      `schema_hash: institution "${id}" ${hex ? `declared ${hex}` : 'declared no data schema'}; this run's data schema (${columns} feature columns, label ${JSON.stringify(labelColumn(this.schema).name)}) ` +
        `has ${this.schemaHashHex}: compare with \`dpfed schema hash --schema FILE\` and preprocess with the run's schema (it comes with every ChallengeResponse as schema_json)`,
    );
  }

  /** Checks an envelope's institution and session; refreshes liveness. */
  authenticate(envelope: Envelope | null | undefined): Institution {
    if (!envelope) throw invalidArgument('envelope: missing');
    const institution = this.institutions.get(envelope.institutionId);
    if (!institution) throw invalidArgument(`envelope.institution_id: unknown institution ${quoted(String(envelope.institutionId), 64)} (register first)`, 'NOT_REGISTERED');
    const session = Buffer.from(envelope.session ?? []);
    if (session.length !== institution.session.length || !timingSafeEqual(session, institution.session)) {
      throw unauthenticated(`envelope.session: not the current session of "${envelope.institutionId}" (register again)`, 'SESSION_NOT_CURRENT');
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
