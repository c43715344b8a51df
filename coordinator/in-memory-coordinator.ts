// A coordinator with no network edge: the same federation core as `dpfed coordinator` (run, registry,
// enrolment, strategy, privacy, secure aggregation, ledger: federation-core.ts), reached by institutions in
// the same process through in-memory links (in-memory-link.ts). Simulations run whole federations this way;
// tests compare it with the gRPC coordinator. There is no TLS because there is no connection to protect:
// admission rests on the enrolment allow-list and the signed registration, as with --insecure.
import type { CoordinatorLink } from '@dpfed/proto/coordinator-link';
import { openFederation, pollRevocations, type Coordinator, type CoordinatorOptions } from './federation-core.ts';
import { federationOperations, type FederationOperations } from './federation-operations.ts';
import { inMemoryLink } from './in-memory-link.ts';

export type InMemoryCoordinatorOptions = Omit<CoordinatorOptions, 'tls' | 'insecure' | 'host' | 'port'>;

export interface InMemoryCoordinator extends Coordinator {
  /** A new link for one institution (each institution holds its own, as it would hold its own connection). */
  link(): CoordinatorLink;
}

export async function startInMemoryCoordinator(options: InMemoryCoordinatorOptions): Promise<InMemoryCoordinator> {
  const federation = await openFederation(options);
  const { runId, store, enrolment, registry, receipts, identity, machine, lastRound } = federation;
  const metrics = options.metrics;
  const refused = metrics && ((code: number, message: string) => metrics.refusal(code, message));
  const core = federationOperations({ registry, machine: () => machine, coordinatorIdentity: identity, receipts, log: options.log });
  // the allow-list step the gRPC edge takes before Challenge and Register (peer-admission.ts), with no certificate
  const ops: FederationOperations = {
    ...core,
    challenge(request) {
      registry.admit({ institutionId: request.institutionId }, null);
      return core.challenge(request);
    },
    register(request) {
      registry.admit(request, null);
      return core.register(request);
    },
  };
  const links = new Set<CoordinatorLink>();
  const revocations = pollRevocations(federation, options);
  metrics?.observe(machine);
  const finished = machine.run();
  let closed = false;
  return {
    port: 0,
    runId,
    machine,
    store,
    enrolment,
    resumedFromRound: lastRound,
    finished,
    link() {
      if (closed) throw new Error('the in-memory coordinator is closed');
      const link = inMemoryLink(ops, { refused, log: options.log });
      links.add(link);
      return link;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(revocations);
      machine.stop();
      for (const link of links) link.close();
      await finished.catch(() => undefined);
      store.close();
    },
  };
}
