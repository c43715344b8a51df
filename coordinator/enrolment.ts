// Enrolment: the operator's allow-list of institutions, kept in the coordinator's SQLite file (table
// `enrolments`). Each entry binds an institution id to its Ed25519 identity public key; an entry is active
// or revoked. Only an active entry's id with exactly that key may register, and a revoked entry loses its
// session at its next call. Keys are never learned from the wire, so no one can claim an id first.
// The operator manages the list with `dpfed enrol` (cli/enrol-command.ts) or `--enrol-file`.
import type Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { INSTITUTION_ID_PATTERN } from '@dpfed/proto/registration';
import { permissionDenied } from './rpc-error.ts';

export interface EnrolmentRecord {
  institutionId: string;
  /** 32-byte Ed25519 identity public key. */
  publicKey: Uint8Array;
  status: 'active' | 'revoked';
  enrolledAt: string;
  revokedAt: string | null;
}

/** A refused enrolment change; `field` names the flag or JSON field at fault. */
export class EnrolmentError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** What a peer proved at the TLS layer: with mutual TLS, the institution id its certificate binds (null: none). */
export type PeerCertificateId = { certifiedId: string | null } | null;

export const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

/** Parses a 64-hex-character Ed25519 public key, blaming `field`. */
export function parsePublicKey(text: string, field: string): Uint8Array {
  const trimmed = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(trimmed)) throw new EnrolmentError(field, 'expected an Ed25519 public key as 64 hex characters');
  return new Uint8Array(Buffer.from(trimmed, 'hex'));
}

function checkId(id: string, field: string): void {
  if (!INSTITUTION_ID_PATTERN.test(id)) throw new EnrolmentError(field, `"${id}" is not a valid institution id (letters, digits, . _ -; at most 64)`);
}

type Row = { institution_id: string; public_key: Buffer; status: 'active' | 'revoked'; enrolled_at: string; revoked_at: string | null };

const toRecord = (row: Row): EnrolmentRecord => ({
  institutionId: row.institution_id,
  publicKey: new Uint8Array(row.public_key),
  status: row.status,
  enrolledAt: row.enrolled_at,
  revokedAt: row.revoked_at,
});

export class Enrolment {
  private readonly byId: Database.Statement<[string], Row>;

  constructor(private readonly db: Database.Database) {
    this.byId = db.prepare('SELECT * FROM enrolments WHERE institution_id = ?');
  }

  get(institutionId: string): EnrolmentRecord | undefined {
    const row = this.byId.get(institutionId);
    return row ? toRecord(row) : undefined;
  }

  list(): EnrolmentRecord[] {
    return (this.db.prepare('SELECT * FROM enrolments ORDER BY institution_id').all() as Row[]).map(toRecord);
  }

  /**
   * Admits `institutionId` with `publicKey`. Enrolling an active entry again with the same key changes
   * nothing ('unchanged'); with another key it is refused (revoke it first). A revoked entry is enrolled
   * again ('re-enrolled'), with the key given now.
   */
  add(institutionId: string, publicKey: Uint8Array, fields = { institution: '--institution', publicKey: '--public-key' }): 'enrolled' | 're-enrolled' | 'unchanged' {
    checkId(institutionId, fields.institution);
    if (publicKey.length !== 32) throw new EnrolmentError(fields.publicKey, 'expected a 32-byte Ed25519 public key');
    const existing = this.get(institutionId);
    const now = new Date().toISOString();
    if (existing?.status === 'active') {
      if (Buffer.from(existing.publicKey).equals(Buffer.from(publicKey))) return 'unchanged';
      throw new EnrolmentError(fields.publicKey, `institution "${institutionId}" is already enrolled with another key (${hex(existing.publicKey)}); revoke it first`);
    }
    this.db
      .prepare(`INSERT INTO enrolments (institution_id, public_key, status, enrolled_at, revoked_at) VALUES (?, ?, 'active', ?, NULL)
                ON CONFLICT(institution_id) DO UPDATE SET public_key = excluded.public_key, status = 'active', enrolled_at = excluded.enrolled_at, revoked_at = NULL`)
      .run(institutionId, Buffer.from(publicKey), now);
    return existing ? 're-enrolled' : 'enrolled';
  }

  /** Revokes an enrolled institution: it cannot register again, and its live session ends at its next call. */
  revoke(institutionId: string, field = '--institution'): 'revoked' | 'already revoked' {
    checkId(institutionId, field);
    const existing = this.get(institutionId);
    if (!existing) throw new EnrolmentError(field, `institution "${institutionId}" is not enrolled`);
    if (existing.status === 'revoked') return 'already revoked';
    this.db.prepare("UPDATE enrolments SET status = 'revoked', revoked_at = ? WHERE institution_id = ?").run(new Date().toISOString(), institutionId);
    return 'revoked';
  }

  /** The ids among `ids` whose entry is no longer active (revoked, or removed from the file by hand). */
  notActive(ids: string[]): string[] {
    return ids.filter((id) => this.get(id)?.status !== 'active');
  }

  /**
   * The check of a Register request, before anything else is looked at: with mutual TLS the certificate
   * must bind this very id; then the id must be enrolled, active, and enrolled with this key. Throws
   * PERMISSION_DENIED naming the institution and the reason.
   */
  admitRegistration(institutionId: string, publicKey: Uint8Array, peer: PeerCertificateId): void {
    this.checkCertificate(institutionId, peer);
    this.checkActive(institutionId, publicKey);
  }

  /**
   * The check of a Challenge request (which carries an id, no key), before a nonce is issued: with mutual TLS
   * the certificate must bind this very id; then the id must be enrolled and active. Throws PERMISSION_DENIED.
   */
  admitChallenge(institutionId: string, peer: PeerCertificateId): void {
    this.checkCertificate(institutionId, peer);
    const record = this.get(institutionId);
    if (!record) throw permissionDenied(`institution_id: institution "${institutionId}" is not enrolled (the operator admits it with dpfed enrol add)`, 'NOT_ENROLLED');
    if (record.status === 'revoked') throw permissionDenied(`institution_id: institution "${institutionId}" is revoked (since ${record.revokedAt})`, 'REVOKED');
  }

  private checkCertificate(institutionId: string, peer: PeerCertificateId): void {
    if (!peer) return;
    if (peer.certifiedId === null) throw permissionDenied(`certificate: the client certificate binds no institution id (expected one for "${institutionId}")`);
    if (peer.certifiedId !== institutionId) {
      throw permissionDenied(`certificate: the client certificate is bound to institution "${peer.certifiedId}", not to "${institutionId}"`);
    }
  }

  /** The check of every later call: the institution is still enrolled, active, with this key. */
  checkActive(institutionId: string, publicKey: Uint8Array): void {
    const record = this.get(institutionId);
    if (!record) throw permissionDenied(`institution_id: institution "${institutionId}" is not enrolled (the operator admits it with dpfed enrol add)`, 'NOT_ENROLLED');
    if (record.status === 'revoked') throw permissionDenied(`institution_id: institution "${institutionId}" is revoked (since ${record.revokedAt})`, 'REVOKED');
    if (!Buffer.from(record.publicKey).equals(Buffer.from(publicKey))) {
      throw permissionDenied(`identity_public_key: key mismatch for institution "${institutionId}" (this is not the identity key it is enrolled with)`);
    }
  }

  /**
   * The check of a Session stream as it opens, with mutual TLS: its certificate must bind an enrolled,
   * active institution.
   */
  admitCertificate(certifiedId: string | null): void {
    if (certifiedId === null) throw permissionDenied('certificate: the client certificate binds no institution id');
    const record = this.get(certifiedId);
    if (!record) throw permissionDenied(`certificate: institution "${certifiedId}" is not enrolled`, 'NOT_ENROLLED');
    if (record.status === 'revoked') throw permissionDenied(`certificate: institution "${certifiedId}" is revoked (since ${record.revokedAt})`, 'REVOKED');
  }
}

/** An entry of an enrolment file: `[{ "institution": "bank-1", "publicKey": "<64 hex>" }, …]`. */
export interface EnrolmentEntry {
  institutionId: string;
  publicKey: Uint8Array;
}

/** Reads an enrolment file (a JSON list); errors name the file, the entry and the field. */
export function readEnrolmentFile(path: string, field = '--enrol-file'): EnrolmentEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new EnrolmentError(field, `cannot read ${path} as JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(parsed)) throw new EnrolmentError(field, `${path}: expected a JSON list of { "institution": ID, "publicKey": HEX }`);
  const seen = new Set<string>();
  return parsed.map((entry, i) => {
    const e = (entry ?? {}) as Record<string, unknown>;
    const id = e.institution ?? e.institutionId;
    if (typeof id !== 'string') throw new EnrolmentError(`${field}`, `${path}[${i}].institution: expected a string`);
    checkId(id, `${field} ${path}[${i}].institution`);
    if (seen.has(id)) throw new EnrolmentError(field, `${path}[${i}].institution: "${id}" is listed twice`);
    seen.add(id);
    if (typeof e.publicKey !== 'string') throw new EnrolmentError(field, `${path}[${i}].publicKey: expected 64 hex characters`);
    return { institutionId: id, publicKey: parsePublicKey(e.publicKey, `${field} ${path}[${i}].publicKey`) };
  });
}
