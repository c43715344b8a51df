// How a simulated federation's institutions reach its coordinator; the one place that knows.
// `grpc`: the production server and client over plaintext gRPC on 127.0.0.1 (an ephemeral port), every
// message through the real wire code. Both sides run the same coordinator, strategy, privacy,
// secure-aggregation and ledger code whatever the transport.
import { startCoordinator, type Coordinator, type CoordinatorOptions } from '../coordinator/coordinator-server.ts';
import type { FederationClientOptions } from '../client-sdk/federation-client.ts';

export const TRANSPORTS = ['grpc'] as const;
export type TransportName = (typeof TRANSPORTS)[number];
export const DEFAULT_TRANSPORT: TransportName = 'grpc';

export interface SimCoordinator {
  coordinator: Coordinator;
  /** The FederationClient options that connect an institution to this coordinator. */
  connect(): Pick<FederationClientOptions, 'coordinator' | 'insecure'>;
}

export async function startSimCoordinator(transport: TransportName, options: Omit<CoordinatorOptions, 'tls' | 'insecure' | 'host' | 'port'>): Promise<SimCoordinator> {
  switch (transport) {
    case 'grpc': {
      const coordinator = await startCoordinator({ ...options, host: '127.0.0.1', port: 0, insecure: true });
      return { coordinator, connect: () => ({ coordinator: `127.0.0.1:${coordinator.port}`, insecure: true }) };
    }
    default:
      throw new Error(`unknown transport "${transport as string}"`);
  }
}
