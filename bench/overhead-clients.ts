// The institutions of the round-overhead bench, in their own process: `node --import tsx
// bench/overhead-clients.ts HOST:PORT COUNT`. Each runs the real FederationClient with a learner that does
// no training, until the coordinator says DONE.
import { FederationClient } from '../client-sdk/federation-client.ts';
import { generateIdentity } from '../privacy/identity.ts';
import { NoTrainingLearner } from './overhead-clients-learner.ts';

const [address, count] = process.argv.slice(2);
if (!address || !(Number(count) > 0)) {
  process.stderr.write('usage: node --import tsx bench/overhead-clients.ts HOST:PORT COUNT\n');
  process.exit(2);
}
const clients = Array.from({ length: Number(count) }, (_, k) => new FederationClient({
  coordinator: address,
  institutionId: `bank-${k + 1}`,
  identity: generateIdentity(),
  learner: new NoTrainingLearner(),
}));
try {
  await Promise.all(clients.map((c) => c.run()));
} finally {
  for (const c of clients) c.close();
}
