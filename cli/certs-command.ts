// `dpfed certs init|issue`: the federation's certificate authority (proto/certificate-authority.ts).
// init makes the CA; issue makes an institution's client certificate (bound to its id) or, with --server,
// the coordinator's server certificate for --hosts. Keys are written with mode 0600; nothing is overwritten.
import { CertificateError, createCertificateAuthority, issueCertificate } from '@dpfed/proto/certificate-authority';
import { UsageError, type CommandSpec, type FlagValues } from '@dpfed/proto/command-flags';
import { runSubcommand, type Subcommand } from './subcommands.ts';

const days = (v: number | string) => (Number.isInteger(Number(v)) && Number(v) >= 1 && Number(v) <= 36500 ? undefined : 'must be an integer number of days in 1..36500');

const INIT: CommandSpec = {
  name: 'certs init',
  summary: 'create the federation CA (ca.key, mode 0600, and ca.crt) in a folder',
  flags: [
    { name: 'out', type: 'string', required: true, help: 'folder for ca.key and ca.crt (created if absent; existing files are not overwritten)' },
    { name: 'name', type: 'string', default: 'dpfed federation CA', help: "the CA certificate's common name" },
    { name: 'days', type: 'int', default: 3650, help: 'validity in days', check: days },
    { name: 'json', type: 'boolean', help: 'print one JSON object with the file paths' },
  ],
  examples: ['dpfed certs init --out ca'],
};

const ISSUE: CommandSpec = {
  name: 'certs issue',
  summary: "issue an institution's client certificate, or with --server the coordinator's server certificate",
  usage: 'dpfed certs issue --ca DIR --name ID --out DIR [--server --hosts 127.0.0.1,localhost]',
  flags: [
    { name: 'ca', type: 'string', required: true, help: 'folder of the CA (ca.crt and ca.key from dpfed certs init)' },
    { name: 'name', type: 'string', required: true, help: "institution id the certificate is bound to (or, with --server, the coordinator's name)" },
    { name: 'out', type: 'string', required: true, help: 'folder for <name>.crt and <name>.key (mode 0600)' },
    { name: 'server', type: 'boolean', help: 'a server certificate for the coordinator instead of a client certificate' },
    { name: 'hosts', type: 'string', help: 'with --server: comma-separated IP addresses and DNS names the coordinator is reached at' },
    { name: 'days', type: 'int', default: 825, help: 'validity in days', check: days },
    { name: 'json', type: 'boolean', help: 'print one JSON object with the file paths' },
  ],
  examples: ['dpfed certs issue --ca ca --name coordinator --server --hosts 127.0.0.1,localhost,coord.example --out tls', 'dpfed certs issue --ca ca --name bank-a --out bank-a-tls'],
};

async function translated<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof CertificateError) throw new UsageError(error.message);
    throw error;
  }
}

function report(f: FlagValues, what: string, files: { certPath: string; keyPath: string }): number {
  if (f.json) process.stdout.write(JSON.stringify({ certificate: files.certPath, key: files.keyPath }) + '\n');
  else process.stdout.write(`${what}: certificate ${files.certPath}, key ${files.keyPath} (mode 0600)\n`);
  return 0;
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  init: {
    spec: INIT,
    body: async (f) => report(f, 'federation CA', await translated(() => createCertificateAuthority(String(f.out), { name: String(f.name), days: Number(f.days) }))),
  },
  issue: {
    spec: ISSUE,
    body: async (f) => {
      const hosts =
        f.hosts === undefined
          ? []
          : String(f.hosts)
              .split(',')
              .map((h) => h.trim());
      if (f.hosts !== undefined && hosts.some((h) => h === '')) throw new UsageError('--hosts: an empty host in the list');
      const files = await translated(() => issueCertificate(String(f.ca), { name: String(f.name), outDir: String(f.out), server: Boolean(f.server), hosts, days: Number(f.days) }));
      return report(f, f.server ? `server certificate for ${hosts.join(', ')}` : `client certificate of institution ${f.name}`, files);
    },
  },
};

export function main(argv: string[]): Promise<number> {
  return runSubcommand('certs', "the federation's certificate authority: CA, server and institution certificates", SUBCOMMANDS, argv);
}
