// `dpfed enrol add|list|revoke --db FILE`: the operator's allow-list of institutions (coordinator/
// enrolment.ts), kept in the coordinator's SQLite file. A running coordinator on the same file sees a
// change at once: an added institution may register, a revoked one loses its session.
import { existsSync } from 'node:fs';
import { CoordinatorStore } from '@dpfed/coordinator/coordinator-store';
import { Enrolment, EnrolmentError, hex, parsePublicKey } from '@dpfed/coordinator/enrolment';
import { loadIdentity } from './identity-command.ts';
import { UsageError, type CommandSpec, type FlagSpec, type FlagValues } from '@dpfed/proto/command-flags';
import { runSubcommand, type Subcommand } from './subcommands.ts';

const dbFlag: FlagSpec = { name: 'db', type: 'string', required: true, help: "the coordinator's SQLite file (created if absent, so institutions can be enrolled before the first start)" };
const institutionFlag: FlagSpec = { name: 'institution', type: 'string', required: true, help: 'institution id' };

const ADD: CommandSpec = {
  name: 'enrol add',
  summary: 'admit an institution: its id and its Ed25519 identity public key',
  usage: 'dpfed enrol add --db FILE --institution ID (--public-key HEX | --identity-file FILE)',
  flags: [
    dbFlag,
    institutionFlag,
    { name: 'public-key', type: 'string', help: "the institution's identity public key, 64 hex characters (it prints it with dpfed identity show)" },
    { name: 'identity-file', type: 'string', help: 'or: an identity key file (dpfed identity init) whose public key is enrolled' },
    { name: 'json', type: 'boolean', help: 'print one JSON object' },
  ],
  examples: ['dpfed enrol add --db fed.sqlite --institution bank-a --public-key 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29'],
};

const LIST: CommandSpec = {
  name: 'enrol list',
  summary: 'list enrolled and revoked institutions',
  flags: [dbFlag, { name: 'json', type: 'boolean', help: 'print a JSON list' }],
};

const REVOKE: CommandSpec = {
  name: 'enrol revoke',
  summary: 'revoke an institution: it cannot register again; a running coordinator ends its session',
  flags: [dbFlag, institutionFlag, { name: 'json', type: 'boolean', help: 'print one JSON object' }],
};

/** Opens the allow-list of `--db`; list only reads an existing file. */
function open(f: FlagValues, mustExist: boolean): { enrolment: Enrolment; close(): void } {
  const db = String(f.db);
  if (mustExist && !existsSync(db)) throw new UsageError(`--db: ${db} does not exist`);
  let store: CoordinatorStore;
  try {
    store = new CoordinatorStore(db);
  } catch (error) {
    throw new UsageError(`--db: cannot open ${db} as a dpfed database (${(error as Error).message})`);
  }
  return { enrolment: new Enrolment(store.db), close: () => store.close() };
}

function withEnrolment(mustExist: boolean, body: (enrolment: Enrolment, f: FlagValues) => number): (f: FlagValues) => Promise<number> {
  return async (f) => {
    const { enrolment, close } = open(f, mustExist);
    try {
      return body(enrolment, f);
    } catch (error) {
      if (error instanceof EnrolmentError) throw new UsageError(error.message);
      throw error;
    } finally {
      close();
    }
  };
}

const recordJson = (r: ReturnType<Enrolment['list']>[number]) => ({ institution: r.institutionId, publicKey: hex(r.publicKey), status: r.status, enrolledAt: r.enrolledAt, revokedAt: r.revokedAt });

const SUBCOMMANDS: Record<string, Subcommand> = {
  add: {
    spec: ADD,
    body: async (f) => {
      if (Boolean(f.publicKey) === Boolean(f.identityFile)) throw new UsageError('--public-key or --identity-file: give exactly one');
      const publicKey = f.publicKey
        ? (() => {
            try {
              return parsePublicKey(String(f.publicKey), '--public-key');
            } catch (error) {
              throw new UsageError((error as Error).message);
            }
          })()
        : loadIdentity(String(f.identityFile), '--identity-file').publicKey;
      return withEnrolment(false, (enrolment) => {
        const id = String(f.institution);
        const outcome = enrolment.add(id, publicKey);
        if (f.json) process.stdout.write(JSON.stringify({ ...recordJson(enrolment.get(id)!), outcome }) + '\n');
        else process.stdout.write(`${id}: ${outcome} (identity key ${hex(publicKey)})\n`);
        return 0;
      })(f);
    },
  },
  list: {
    spec: LIST,
    body: withEnrolment(true, (enrolment, f) => {
      const records = enrolment.list();
      if (f.json) process.stdout.write(JSON.stringify(records.map(recordJson)) + '\n');
      else if (!records.length) process.stdout.write('no institution is enrolled\n');
      else for (const r of records) process.stdout.write(`${r.institutionId}\t${r.status}\t${hex(r.publicKey)}\tenrolled ${r.enrolledAt}${r.revokedAt ? `\trevoked ${r.revokedAt}` : ''}\n`);
      return 0;
    }),
  },
  revoke: {
    spec: REVOKE,
    body: withEnrolment(true, (enrolment, f) => {
      const id = String(f.institution);
      const outcome = enrolment.revoke(id);
      if (f.json) process.stdout.write(JSON.stringify({ ...recordJson(enrolment.get(id)!), outcome }) + '\n');
      else process.stdout.write(`${id}: ${outcome}\n`);
      return 0;
    }),
  },
};

export function main(argv: string[]): Promise<number> {
  return runSubcommand('enrol', "the coordinator's allow-list of institutions (id and identity public key)", SUBCOMMANDS, argv);
}
