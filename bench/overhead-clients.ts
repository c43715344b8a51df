// The institutions of the round-overhead bench, in their own process: `node --import tsx
// bench/overhead-clients.ts HOST:PORT COUNT IDENTITY_DIR`. Each runs the real FederationClient with a
// learner that does no training, until the coordinator says DONE, under the identity key the bench
// enrolled for it (IDENTITY_DIR/bank-K.identity), over plaintext gRPC like the coordinator it measures.
import { join } from 'node:path';
import { FederationClient } from '@dpfed/client/federation-client';
import { loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { NoTrainingLearner } from './overhead-clients-learner.ts';

const [address, count, identityDir] = process.argv.slice(2);
if (!address || !(Number(count) > 0) || !identityDir) {
  process.stderr.write('usage: node --import tsx bench/overhead-clients.ts HOST:PORT COUNT IDENTITY_DIR\n');
  process.exit(2);
}
const clients = Array.from(
  { length: Number(count) },
  (_, k) =>
    new FederationClient({
      coordinator: address,
      institutionId: `bank-${k + 1}`,
      identity: loadOrCreateIdentity(join(identityDir, `bank-${k + 1}.identity`)),
      learner: new NoTrainingLearner(),
      insecure: true,
    }),
);
try {
  await Promise.all(clients.map((c) => c.run()));
} finally {
  for (const c of clients) c.close();
}
