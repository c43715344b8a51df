// `dpfed identity init|show`: an institution's Ed25519 identity key file (a hex seed, mode 0600), and the
// public key the operator enrols (`dpfed enrol add --public-key`). The seed never leaves the institution.
import { existsSync, readFileSync } from 'node:fs';
import { identityFromSeed, loadOrCreateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { UsageError, type CommandSpec, type FlagValues } from '@dpfed/proto/command-flags';
import { runSubcommand, type Subcommand } from './subcommands.ts';

/** Reads an existing identity key file, blaming `field` when it is missing or malformed. */
export function loadIdentity(path: string, field: string): IdentityKey {
  if (!existsSync(path)) throw new UsageError(`${field}: ${path} does not exist (dpfed identity init --identity ${path} creates one)`);
  const text = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new UsageError(`${field}: ${path} is not an identity key file (expected 64 hex characters)`);
  return identityFromSeed(Buffer.from(text, 'hex'));
}

const identityFlag = { name: 'identity', type: 'string' as const, required: true, help: 'identity key file (the one dpfed client --identity uses)' };
const jsonFlag = { name: 'json', type: 'boolean' as const, help: 'print one JSON object' };

const INIT: CommandSpec = {
  name: 'identity init',
  summary: 'create the identity key file if absent, and print its public key',
  flags: [identityFlag, { name: 'institution', type: 'string', help: 'the institution id, to print the matching dpfed enrol add line' }, jsonFlag],
  examples: ['dpfed identity init --identity bank-a.identity --institution bank-a'],
};

const SHOW: CommandSpec = {
  name: 'identity show',
  summary: 'print the public key of an existing identity key file',
  flags: [identityFlag, { name: 'institution', type: 'string', help: 'the institution id, to print the matching dpfed enrol add line' }, jsonFlag],
};

function print(f: FlagValues, identity: IdentityKey, created: boolean): number {
  const publicKey = Buffer.from(identity.publicKey).toString('hex');
  if (f.json) {
    process.stdout.write(JSON.stringify({ identity: String(f.identity), publicKey, created, ...(f.institution ? { institution: String(f.institution) } : {}) }) + '\n');
    return 0;
  }
  process.stdout.write(`${publicKey}\n`);
  if (created) process.stderr.write(`created ${f.identity} (keep it secret; mode 0600)\n`);
  process.stderr.write(`the operator enrols it with: dpfed enrol add --db FILE --institution ${f.institution ? String(f.institution) : 'ID'} --public-key ${publicKey}\n`);
  return 0;
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  init: {
    spec: INIT,
    body: async (f) => {
      const path = String(f.identity);
      const existed = existsSync(path);
      const identity = existed ? loadIdentity(path, '--identity') : loadOrCreateIdentity(path);
      return print(f, identity, !existed);
    },
  },
  show: {
    spec: SHOW,
    body: async (f) => print(f, loadIdentity(String(f.identity), '--identity'), false),
  },
};

export function main(argv: string[]): Promise<number> {
  return runSubcommand('identity', "an institution's Ed25519 identity key and the public key to enrol", SUBCOMMANDS, argv);
}
