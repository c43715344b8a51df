// The federation's own certificate authority: a CA key and certificate (ECDSA P-256), the coordinator's
// server certificate and one client certificate per institution, all X.509 through @peculiar/x509 over
// Node's WebCrypto. An institution's certificate is bound to its id (CN and a SAN URI
// `dpfed:institution:<id>`, see tls-credentials.ts); a server certificate names its hosts instead and
// binds no institution. Private keys are written as PKCS#8 PEM with mode 0600; nothing is overwritten.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { INSTITUTION_ID_PATTERN } from './registration.ts';
import { institutionUri } from './tls-credentials.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Backdating of notBefore, so a peer whose clock is a little behind accepts a fresh certificate. */
const CLOCK_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';

export interface IssuedFiles {
  certPath: string;
  keyPath: string;
}

export class CertificateError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** A positive random 128-bit serial number (hex), as RFC 5280 asks: unpredictable, at most 20 bytes. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;
  return bytes.toString('hex');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - CLOCK_SKEW_MS), notAfter: new Date(now + days * DAY_MS) };
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Writes the certificate and its key; the key file is readable by its owner only. */
function writePair(dir: string, base: string, certPem: string, keyPem: string): IssuedFiles {
  mkdirSync(dir, { recursive: true });
  const certPath = join(dir, `${base}.crt`);
  const keyPath = join(dir, `${base}.key`);
  writeFileSync(keyPath, keyPem, { mode: 0o600, flag: 'wx' });
  chmodSync(keyPath, 0o600); // the mode of a new file is also masked by the umask; 0600 is the point
  writeFileSync(certPath, certPem, { flag: 'wx' });
  return { certPath, keyPath };
}

function refuseExisting(dir: string, files: string[], field: string): void {
  const present = files.filter((f) => existsSync(join(dir, f)));
  if (present.length) throw new CertificateError(field, `${dir} already holds ${present.join(', ')}; nothing was overwritten (choose another folder or remove them)`);
}

/** Creates a federation CA in `outDir`: ca.key (0600) and ca.crt, a self-signed CA certificate. */
export async function createCertificateAuthority(outDir: string, o: { name?: string; days?: number } = {}): Promise<IssuedFiles> {
  refuseExisting(outDir, [CA_CERT_FILE, CA_KEY_FILE], '--out');
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: new x509.Name([{ CN: [o.name ?? 'dpfed federation CA'] }]).toString(),
    ...validity(o.days ?? 3650),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return writePair(outDir, 'ca', certificate.toString('pem'), await privateKeyPem(keys.privateKey));
}

async function loadCertificateAuthority(caDir: string): Promise<{ certificate: x509.X509Certificate; key: CryptoKey }> {
  const certPath = join(caDir, CA_CERT_FILE);
  const keyPath = join(caDir, CA_KEY_FILE);
  let certificate: x509.X509Certificate;
  let keyPem: string;
  try {
    certificate = new x509.X509Certificate(readFileSync(certPath, 'utf8'));
    keyPem = readFileSync(keyPath, 'utf8');
  } catch (error) {
    throw new CertificateError('--ca', `${caDir} does not hold a readable CA (${CA_CERT_FILE} and ${CA_KEY_FILE}: ${(error as Error).message})`);
  }
  let key: CryptoKey;
  try {
    key = (await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(keyPem), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])) as unknown as CryptoKey;
  } catch (error) {
    throw new CertificateError('--ca', `${keyPath} is not an ECDSA P-256 PKCS#8 key (${(error as Error).message})`);
  }
  return { certificate, key };
}

export interface IssueOptions {
  /** Institution id (client certificate) or the coordinator's name (server certificate). */
  name: string;
  outDir: string;
  /** A server certificate for the coordinator, valid for `hosts` (IP addresses or DNS names). */
  server?: boolean;
  hosts?: string[];
  days?: number;
}

/**
 * Issues a certificate signed by the CA in `caDir`, written as `<name>.crt` and `<name>.key` (0600) in
 * `outDir`. A client certificate binds the institution id `name`; a server certificate names `hosts`.
 */
export async function issueCertificate(caDir: string, o: IssueOptions): Promise<IssuedFiles> {
  if (!INSTITUTION_ID_PATTERN.test(o.name)) throw new CertificateError('--name', `"${o.name}" is not a valid id (letters, digits, . _ -; at most 64)`);
  const hosts = o.hosts ?? [];
  if (o.server && hosts.length === 0) throw new CertificateError('--hosts', 'a server certificate needs at least one host (e.g. 127.0.0.1,localhost)');
  if (!o.server && hosts.length > 0) throw new CertificateError('--hosts', 'only a server certificate (--server) names hosts');
  for (const host of hosts) {
    if (!isIP(host) && !/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host)) {
      throw new CertificateError('--hosts', `"${host}" is neither an IP address nor a DNS name`);
    }
  }
  refuseExisting(o.outDir, [`${o.name}.crt`, `${o.name}.key`], '--out');
  const ca = await loadCertificateAuthority(caDir);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const altNames: x509.JsonGeneralName[] = o.server
    ? hosts.map((h) => (isIP(h) ? { type: 'ip', value: h } : { type: 'dns', value: h }) as x509.JsonGeneralName)
    : [{ type: 'url', value: institutionUri(o.name) }];
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: new x509.Name([{ CN: [o.name] }]).toString(),
    issuer: ca.certificate.subject,
    ...validity(o.days ?? 825),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([o.server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(altNames, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
    ],
  });
  return writePair(o.outDir, o.name, certificate.toString('pem'), await privateKeyPem(keys.privateKey));
}
