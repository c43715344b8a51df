// How a simulated federation's institutions reach its coordinator; the one place that knows.
// - `memory` (the default): the in-memory coordinator (coordinator/in-memory-coordinator.ts), each
//   institution holding its own in-memory link: no sockets, no encoding of messages;
// - `grpc`: the production server and client over plaintext gRPC on 127.0.0.1 (an ephemeral port), every
//   message through the real wire code: the check that the transport changes nothing.
// Both run the same coordinator core, strategy, privacy, secure-aggregation and ledger code.
import { startCoordinator, type Coordinator, type CoordinatorOptions } from '@dpfed/coordinator/coordinator-server';
import { startInMemoryCoordinator } from '@dpfed/coordinator/in-memory-coordinator';
import type { FederationClientOptions } from '@dpfed/client/federation-client';

export const TRANSPORTS = ['memory', 'grpc'] as const;
export type TransportName = (typeof TRANSPORTS)[number];
export const DEFAULT_TRANSPORT: TransportName = 'memory';

export interface SimCoordinator {
  coordinator: Coordinator;
  /** The FederationClient options that connect one institution to this coordinator (call once per institution). */
  connect(): Pick<FederationClientOptions, 'coordinator' | 'insecure' | 'link'>;
}

export async function startSimCoordinator(transport: TransportName, options: Omit<CoordinatorOptions, 'tls' | 'insecure' | 'host' | 'port'>): Promise<SimCoordinator> {
  switch (transport) {
    case 'memory': {
      const coordinator = await startInMemoryCoordinator(options);
      return { coordinator, connect: () => ({ link: coordinator.link() }) };
    }
    case 'grpc': {
      const coordinator = await startCoordinator({ ...options, host: '127.0.0.1', port: 0, insecure: true });
      return { coordinator, connect: () => ({ coordinator: `127.0.0.1:${coordinator.port}`, insecure: true }) };
    }
    default:
      throw new Error(`unknown transport "${transport as string}"`);
  }
}
