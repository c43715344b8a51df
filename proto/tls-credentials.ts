// TLS on the wire, shared by the coordinator and the institutions: reading the PEM files of a federation
// (its CA certificate, one's own certificate and key), gRPC credentials built from them, and the binding of
// a certificate to an institution id. An institution's certificate names its id twice: as its subject CN
// and as a SAN URI `dpfed:institution:<id>`; the coordinator reads the id from the URI only, so a
// certificate without that URI (a server certificate, or one from elsewhere) identifies no institution.
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';

export const INSTITUTION_URI_PREFIX = 'dpfed:institution:';

/** PEM text of a side's TLS material: the federation CA it trusts, and its own certificate and key. */
export interface TlsMaterial {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Where the PEM files are, and the names to blame when one cannot be read (CLI flags or option names). */
export interface TlsPaths {
  ca?: string;
  cert?: string;
  key?: string;
}

export class TlsConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

function readPem(path: string, field: string, marker: RegExp): Buffer {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (error) {
    throw new TlsConfigError(field, `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (!marker.test(text.toString('latin1'))) throw new TlsConfigError(field, `${path} is not a PEM file of the expected kind`);
  return text;
}

const CERT_PEM = /-----BEGIN CERTIFICATE-----/;
const KEY_PEM = /-----BEGIN (EC |RSA )?PRIVATE KEY-----/;

/**
 * Reads a side's PEM files. `names` gives the field each path is blamed under (e.g. `--tls-ca`); the CA
 * is required; a certificate needs its key and a key its certificate. Every certificate is parsed, so a
 * broken file is refused here rather than at the first handshake.
 */
export function readTlsMaterial(paths: TlsPaths, names: { ca: string; cert: string; key: string }): TlsMaterial {
  if (!paths.ca) throw new TlsConfigError(names.ca, 'the federation CA certificate is required for TLS');
  if (Boolean(paths.cert) !== Boolean(paths.key)) {
    throw new TlsConfigError(paths.cert ? names.key : names.cert, `${names.cert} and ${names.key} go together`);
  }
  const material: TlsMaterial = { ca: readPem(paths.ca, names.ca, CERT_PEM) };
  parseCertificate(material.ca, names.ca);
  if (paths.cert && paths.key) {
    material.cert = readPem(paths.cert, names.cert, CERT_PEM);
    parseCertificate(material.cert, names.cert);
    material.key = readPem(paths.key, names.key, KEY_PEM);
  }
  return material;
}

function parseCertificate(pem: Buffer, field: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new TlsConfigError(field, `not a valid X.509 certificate (${(error as Error).message})`);
  }
}

/**
 * The coordinator's server credentials: its certificate and key, and, with `requireClientCertificate`
 * (mutual TLS, the default), a handshake that fails unless the institution presents a certificate
 * issued by the federation CA.
 */
export function serverCredentials(tls: TlsMaterial, requireClientCertificate = true): grpc.ServerCredentials {
  if (!tls.cert || !tls.key) throw new TlsConfigError('tls.cert', 'the coordinator needs its own certificate and key');
  return grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], requireClientCertificate);
}

/** An institution's channel credentials: trusts only the federation CA; presents its certificate when it has one. */
export function channelCredentials(tls: TlsMaterial): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(tls.ca, tls.key ?? null, tls.cert ?? null);
}

/** The SAN URI that binds a certificate to an institution id. */
export function institutionUri(institutionId: string): string {
  return `${INSTITUTION_URI_PREFIX}${institutionId}`;
}

/** The institution ids a SAN string (`URI:…, DNS:…` as Node prints it) binds. */
function idsInSubjectAltName(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  return subjectAltName
    .split(/,\s*/)
    .filter((entry) => entry.startsWith(`URI:${INSTITUTION_URI_PREFIX}`))
    .map((entry) => entry.slice(`URI:${INSTITUTION_URI_PREFIX}`.length));
}

/**
 * The institution id a verified peer certificate is bound to, or null when it binds none. A certificate
 * that names two different ids binds none (it is ambiguous, so it is no one's).
 */
export function certifiedInstitutionId(peer: PeerCertificate | X509Certificate | undefined | null): string | null {
  if (!peer) return null;
  const san = peer instanceof X509Certificate ? peer.subjectAltName : peer.subjectaltname;
  const ids = [...new Set(idsInSubjectAltName(san))];
  return ids.length === 1 ? ids[0] : null;
}
