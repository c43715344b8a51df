// The transport flags of `dpfed coordinator` and `dpfed client`: TLS by default (mutual TLS, with the
// federation CA from `dpfed certs`), plaintext only with an explicit --insecure, which warns on stderr.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { certifiedInstitutionId, readTlsMaterial, TlsConfigError, type TlsMaterial } from './tls-credentials.ts';
import { UsageError, type FlagSpec, type FlagValues } from './command-flags.ts';

export type Side = 'coordinator' | 'client';

export function tlsFlags(side: Side): FlagSpec[] {
  const own = side === 'coordinator' ? "the coordinator's server certificate" : "this institution's client certificate (bound to its id)";
  return [
    {
      name: 'tls-ca',
      type: 'string',
      help: side === 'coordinator' ? 'federation CA certificate (PEM); institutions must present a certificate it issued' : 'federation CA certificate (PEM); the only CA trusted for the coordinator',
    },
    { name: 'tls-cert', type: 'string', help: `${own} (PEM, from dpfed certs issue)` },
    { name: 'tls-key', type: 'string', help: `private key of --tls-cert (PEM)` },
    { name: 'insecure', type: 'boolean', help: 'plaintext gRPC without TLS (testing only; prints a warning)' },
  ];
}

export const INSECURE_WARNING = 'WARNING: --insecure: plaintext gRPC without TLS; nothing on the wire is encrypted or authenticated';

/**
 * The transport the flags ask for. TLS needs --tls-ca, --tls-cert and --tls-key (the coordinator's server
 * certificate, or the institution's client certificate, which must be bound to `institutionId`).
 * --insecure excludes them all and prints INSECURE_WARNING on stderr.
 */
export function transportFromFlags(f: FlagValues, side: Side, o: { institutionId?: string; command: string }): { tls: TlsMaterial } | { insecure: true } {
  const given = (['tls-ca', 'tls-cert', 'tls-key'] as const).filter((n) => f[n.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] !== undefined);
  if (f.insecure) {
    if (given.length) throw new UsageError(`--insecure: cannot be combined with --${given[0]}`);
    process.stderr.write(`dpfed ${o.command}: ${INSECURE_WARNING}\n`);
    return { insecure: true };
  }
  for (const name of ['tls-ca', 'tls-cert', 'tls-key'] as const) {
    if (!given.includes(name)) throw new UsageError(`--${name} is required: TLS is the default (dpfed certs makes the files; --insecure for plaintext)`);
  }
  let tls: TlsMaterial;
  try {
    tls = readTlsMaterial({ ca: String(f.tlsCa), cert: String(f.tlsCert), key: String(f.tlsKey) }, { ca: '--tls-ca', cert: '--tls-cert', key: '--tls-key' });
  } catch (error) {
    if (error instanceof TlsConfigError) throw new UsageError(error.message);
    throw error;
  }
  const certificate = new X509Certificate(tls.cert!);
  if (!certificate.verify(new X509Certificate(tls.ca).publicKey)) throw new UsageError('--tls-cert: not issued by the CA of --tls-ca');
  let matches = false;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(tls.key!));
  } catch (error) {
    throw new UsageError(`--tls-key: not a readable private key (${(error as Error).message})`);
  }
  if (!matches) throw new UsageError('--tls-key: not the private key of --tls-cert');
  if (side === 'client') {
    quietIpServerNameWarning();
    const bound = certifiedInstitutionId(certificate);
    if (bound !== o.institutionId) {
      throw new UsageError(`--tls-cert: the certificate is bound to ${bound === null ? 'no institution' : `institution "${bound}"`}, not to --institution ${o.institutionId}`);
    }
  }
  return { tls };
}

/**
 * grpc-js passes the target host as the TLS server name, and Node warns (DEP0123) on every process that
 * connects to an IP address such as 127.0.0.1 that way. The server certificate is still checked against
 * that IP (its IP SAN), so the warning says nothing to an institution's operator: `dpfed client` drops
 * that one warning and passes every other on.
 */
function quietIpServerNameWarning(): void {
  const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((...args: unknown[]) => {
    const [warning, second, third] = args;
    const code = typeof second === 'object' && second !== null ? (second as { code?: string }).code : third;
    if (code === 'DEP0123' || (warning as { code?: string })?.code === 'DEP0123') return;
    emitWarning(...args);
  }) as typeof process.emitWarning;
}
