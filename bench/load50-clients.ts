// A group of institutions of the load50 bench, in a process of their own:
//   node --import tsx bench/load50-clients.ts HOST:PORT DIR FIRST COUNT LEARNER TOTAL
// runs institutions bank-FIRST … bank-(FIRST+COUNT-1) of TOTAL as FederationClients over mutual TLS, each
// with the identity key, certificate and key the bench wrote to DIR (bank-K.identity, bank-K.crt,
// bank-K.key, ca.crt), until the coordinator says DONE. LEARNER is
//   none  the no-training learner of the round-overhead bench (bench/overhead-clients-learner.ts), or
//   tfjs  the real TfjsLearner (wasm) on bank K's slice of the bundled card-fraud sample (TOTAL disjoint
//         slices, dealt reproducibly), loaded as `dpfed client` loads its CSV (public schema, keyed
//         per-row split), with record-level DP and its own ε ledger in DIR (bank-K.ledger.sqlite); the
//         noise workers of their trainers are booted at start-up.
// Exits 0 when every institution finished, 1 otherwise (the first error on stderr).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadInstitutionCsv } from '@dpfed/client/csv-dataset';
import { RowSplitter } from '@dpfed/client/data-split';
import { FederationClient } from '@dpfed/client/federation-client';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import type { Learner } from '@dpfed/client/learner';
import { selectBackend } from '@dpfed/client/tf-backend';
import { TfjsLearner } from '@dpfed/client/tfjs-learner';
import { loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { prewarmNoiseWorkers } from '@dpfed/privacy/noise-pool';
import { readSchemaFile } from '@dpfed/proto/data-schema';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { readTlsMaterial } from '@dpfed/proto/tls-credentials';
import { SAMPLE_CSV, SAMPLE_SCHEMA } from './card-fraud-csv.ts';
import { NoTrainingLearner } from './overhead-clients-learner.ts';

const [address, dir, firstArg, countArg, learnerKind, totalArg] = process.argv.slice(2);
const first = Number(firstArg);
const count = Number(countArg);
const total = Number(totalArg);
if (!address || !dir || !(first >= 1) || !(count >= 1) || !(total >= first + count - 1) || !['none', 'tfjs'].includes(learnerKind)) {
  process.stderr.write('usage: node --import tsx bench/load50-clients.ts HOST:PORT DIR FIRST COUNT none|tfjs TOTAL\n');
  process.exit(2);
}

/** The CSV text of bank `k` (1-based): its slice of the shuffled card-fraud sample. */
function bankCsv(k: number): string {
  const [header, ...rows] = readFileSync(SAMPLE_CSV, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '');
  new SeededRandom('load50:bank-slices').shuffle(rows);
  const per = Math.floor(rows.length / total);
  return [header, ...rows.slice((k - 1) * per, k * per)].join('\n') + '\n';
}

const ids = Array.from({ length: count }, (_, i) => `bank-${first + i}`);
const privacies: InstitutionPrivacy[] = [];
const tf = learnerKind === 'tfjs' ? (await selectBackend('wasm')).tf : null;
// each TfjsLearner's trainer draws its DP noise in a worker thread: boot them now, while the institutions
// connect and wait for the others, rather than in round 1 (see prewarmNoiseWorkers)
if (tf) prewarmNoiseWorkers(count);
const schema = readSchemaFile(SAMPLE_SCHEMA);
const clients: FederationClient[] = [];
for (const [i, id] of ids.entries()) {
  const identity = loadOrCreateIdentity(join(dir, `${id}.identity`));
  const tls = readTlsMaterial({ ca: join(dir, 'ca.crt'), cert: join(dir, `${id}.crt`), key: join(dir, `${id}.key`) }, { ca: 'ca', cert: 'cert', key: 'key' });
  let learner: Learner = new NoTrainingLearner();
  let privacy: InstitutionPrivacy | undefined;
  const budget = { epsilon: 10, delta: 1e-5 };
  if (tf) {
    const splitKey = createHash('sha256').update(`dpfed-load50-split-key:${id}`).digest();
    const data = await loadInstitutionCsv({ text: bankCsv(first + i), name: `${id}.csv` }, { schema, splitter: new RowSplitter(splitKey, 0.2) });
    learner = new TfjsLearner(tf, data.train, data.validation, { schema });
    privacy = new InstitutionPrivacy({ institutionId: id, identity, budget, ledgerPath: join(dir, `${id}.ledger.sqlite`) });
    privacies.push(privacy);
  }
  clients.push(
    new FederationClient({
      coordinator: address,
      institutionId: id,
      identity,
      learner,
      privacy,
      budget: privacy ? budget : undefined,
      tls,
      reconnectForMs: 120_000,
      log: process.env.DPFED_BENCH_VERBOSE ? (line) => process.stderr.write(`${id}: ${line}\n`) : () => undefined,
    }),
  );
}
let failed = false;
try {
  const results = await Promise.allSettled(clients.map((c) => c.run()));
  for (const [i, r] of results.entries()) {
    if (r.status === 'rejected') {
      failed = true;
      process.stderr.write(`${ids[i]}: ${(r.reason as Error)?.message ?? r.reason}\n`);
    }
  }
} finally {
  for (const c of clients) c.close();
  for (const p of privacies) p.close();
}
process.exit(failed ? 1 : 0);
