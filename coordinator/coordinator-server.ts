// Starts a coordinator: opens (or resumes) the run in SQLite (federation-core.ts), binds the gRPC server (TLS, by default
// mutual TLS; plaintext only when asked for), admits only enrolled institutions, runs the rounds.
import * as grpc from '@grpc/grpc-js';
import { serverCredentials } from '@dpfed/proto/tls-credentials';
import { CHANNEL_OPTIONS, federationServerService, serializeTensorChunk, widenServerFlowControl } from '@dpfed/proto/wire';
import { countingService } from '@dpfed/proto/wire-byte-counter';
import { ZeroCopyFraming } from '@dpfed/proto/zero-copy-framing';
import { EncodedModelCache } from './encoded-model-cache.ts';
import { openFederation, pollRevocations, type Coordinator, type CoordinatorOptions, type FederationCore } from './federation-core.ts';
import { federationHandlers } from './federation-service.ts';
import { admitPeers } from './peer-admission.ts';

export type { Coordinator, CoordinatorOptions } from './federation-core.ts';
export { coordinatorIdentityPath } from './federation-core.ts';

export async function startCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  if (Boolean(options.tls) === Boolean(options.insecure)) throw new Error('startCoordinator: give either tls { cert, key, ca } or insecure: true');
  const core = await openFederation(options);
  try {
    return await serveOverGrpc(core, options);
  } catch (error) {
    core.machine.stop();
    core.store.close();
    throw error;
  }
}

async function serveOverGrpc(core: FederationCore, options: CoordinatorOptions): Promise<Coordinator> {
  const { runId, store, enrolment, registry, receipts, identity, machine, lastRound } = core;
  const credentials = options.tls ? serverCredentials(options.tls, options.tls.requireClientCertificate ?? true) : grpc.ServerCredentials.createInsecure();
  const mutualTls = Boolean(options.tls) && (options.tls?.requireClientCertificate ?? true);
  const server = new grpc.Server(CHANNEL_OPTIONS);
  const metrics = options.metrics;
  const service = metrics ? countingService(federationServerService(), metrics.wireBytes, 'server') : federationServerService();
  const encodedModels = new EncodedModelCache(serializeTensorChunk);
  const openSessions = new Set<{ end(): void }>();
  const refused = metrics && ((code: grpc.status, message: string) => metrics.refusal(code, message));
  const handlers = federationHandlers(
    { registry, machine: () => machine, coordinatorIdentity: identity, receipts, log: options.log, encodedModels, openSessions },
    undefined,
    refused,
    new ZeroCopyFraming({ zeroCopy: options.zeroCopy }),
  );
  const admission = admitPeers(handlers, { registry, enrolment, mutualTls, refused });
  server.addService(service, admission.handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host ?? '127.0.0.1'}:${options.port ?? 0}`, credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  widenServerFlowControl(server);
  metrics?.bound();
  // a revoked institution's Session streams are cut at once
  const revocations = pollRevocations(core, options, (revoked) => admission.cut(revoked, (id) => `institution_id: institution "${id}" is revoked`));
  metrics?.observe(machine);
  const finished = machine.run();
  let closed = false;
  return {
    port,
    runId,
    machine,
    store,
    enrolment,
    resumedFromRound: lastRound,
    finished,
    async close() {
      if (closed) return;
      closed = true;
      metrics?.bound(false);
      clearInterval(revocations);
      machine.stop();
      for (const session of [...openSessions]) session.end();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await finished.catch(() => undefined);
      store.close();
    },
  };
}
