// An institution that embeds the client SDK in its own code instead of running `dpfed client`: its data,
// its identity key and its ε ledger stay in its own process and files; only outbound connections are made.
// It needs only @dpfed/client (npm install @dpfed/client). Run: node --import tsx examples/embed-institution.ts COORDINATOR_HOST:PORT INSTITUTION_ID DATA.csv SCHEMA.json TLS_DIR
// (TLS_DIR holds ca.crt, <id>.crt and <id>.key from `dpfed certs`; the operator enrolled the public key
// that `dpfed identity show` prints for the identity file below).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  defaultKeyDir,
  FederationClient,
  InstitutionPrivacy,
  institutionKeyPath,
  loadInstitutionCsv,
  loadOrCreateIdentity,
  loadOrCreateSplitKey,
  readSchemaFile,
  RowSplitter,
  selectBackend,
  TfjsLearner,
} from '@dpfed/client';

async function main(): Promise<void> {
  const [coordinator, institutionId, dataPath, schemaPath, tlsDir] = process.argv.slice(2);
  if (!tlsDir) throw new Error('usage: embed-institution.ts COORDINATOR INSTITUTION DATA.csv SCHEMA.json TLS_DIR');
  const keyDir = defaultKeyDir();
  const identity = loadOrCreateIdentity(institutionKeyPath(keyDir, institutionId));

  // The public schema fixes the preprocessing; the secret split key decides train vs validation per row.
  const schema = readSchemaFile(schemaPath);
  const splitter = new RowSplitter(loadOrCreateSplitKey(join(keyDir, `${institutionId}.split-key`)), 0.2);
  const data = await loadInstitutionCsv(dataPath, { schema, splitter });

  const backend = await selectBackend('auto');
  const learner = new TfjsLearner(backend.tf, data.train, data.validation, { schema });
  const budget = { epsilon: 5, delta: 1e-5 };
  // The institution's own ledger: it refuses to release past its budget, whatever the coordinator asks.
  const privacy = new InstitutionPrivacy({ institutionId, identity, budget, ledgerPath: `${institutionId}.ledger.sqlite` });
  const client = new FederationClient({
    coordinator,
    institutionId,
    identity,
    learner,
    privacy,
    budget,
    tls: {
      ca: readFileSync(join(tlsDir, 'ca.crt')),
      cert: readFileSync(join(tlsDir, `${institutionId}.crt`)),
      key: readFileSync(join(tlsDir, `${institutionId}.key`)),
    },
    log: (line) => console.error(line),
  });
  try {
    const result = await client.run();
    console.log(`${result.roundsTrained} rounds trained; epsilon spent ${privacy.spent().epsilon.toFixed(3)} of ${budget.epsilon}`);
  } finally {
    client.close();
    privacy.close();
  }
}

await main();
