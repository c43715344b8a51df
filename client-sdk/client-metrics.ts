// An institution node's Prometheus series, in a registry of its own, fed by the FederationClient's
// events and by its gRPC serialisers (bytes): rounds trained and evaluated, declines by reason,
// refusals by gRPC code, ε spent (this run and over all runs in the local ledger), bytes sent and
// received. Nothing about the institution's data: no row counts, no losses, no model values.
import { status as grpcStatus } from '@grpc/grpc-js';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { WireBytes } from '@dpfed/proto/wire-byte-counter';
import type { FederationClient } from './federation-client.ts';

/** ε spent from the institution's own ledger: over all runs, or (runId) in one run. */
export type SpentEpsilonSource = (opts: { runId?: string }) => { epsilon: number };

export class ClientMetrics {
  readonly registry = new Registry();
  /** Counts gRPC message bytes: pass as FederationClientOptions.wireBytes. */
  readonly wireBytes: WireBytes;
  private registeredRun: string | null = null;
  private closed = false;

  private readonly trained = new Counter({ name: 'dpfed_client_rounds_trained_total', help: 'Rounds this institution trained and sent an update for', registers: [this.registry] });
  private readonly evaluated = new Counter({ name: 'dpfed_client_rounds_evaluated_total', help: 'Rounds this institution evaluated a candidate model for', registers: [this.registry] });
  private readonly declines = new Counter({ name: 'dpfed_client_declines_total', help: 'Rounds this institution declined, by reason', labelNames: ['reason'], registers: [this.registry] });
  private readonly refusals = new Counter({
    name: 'dpfed_client_refused_total',
    help: "Tasks the coordinator refused this institution's answer to, by gRPC code",
    labelNames: ['code'],
    registers: [this.registry],
  });
  private readonly epsilon = new Gauge({
    name: 'dpfed_client_epsilon_spent',
    help: 'Epsilon this institution has spent by its own ledger: scope="run" this run, scope="total" all runs',
    labelNames: ['scope'],
    registers: [this.registry],
  });
  private readonly registered = new Gauge({ name: 'dpfed_client_registered', help: '1 while registered with the coordinator', registers: [this.registry] });
  private readonly bytesSent = new Counter({ name: 'dpfed_client_bytes_sent_total', help: 'gRPC message bytes sent to the coordinator', registers: [this.registry] });
  private readonly bytesReceived = new Counter({ name: 'dpfed_client_bytes_received_total', help: 'gRPC message bytes received from the coordinator', registers: [this.registry] });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'dpfed_client_' });
    this.wireBytes = { sent: (n) => this.bytesSent.inc(n), received: (n) => this.bytesReceived.inc(n) };
  }

  /** Subscribes to `client`'s events; `spent` reads ε from the institution's ledger (record and client mode). */
  observe(client: FederationClient, spent?: SpentEpsilonSource): () => void {
    const updateEpsilon = () => {
      if (!spent) return;
      this.epsilon.set({ scope: 'total' }, spent({}).epsilon);
      if (this.registeredRun) this.epsilon.set({ scope: 'run' }, spent({ runId: this.registeredRun }).epsilon);
    };
    const handlers: Record<string, (payload: any) => void> = {
      registered: (e: { runId: string }) => {
        this.registeredRun = e.runId;
        this.registered.set(1);
        updateEpsilon();
      },
      trained: () => {
        this.trained.inc();
        updateEpsilon();
      },
      evaluated: () => {
        this.evaluated.inc();
        updateEpsilon(); // a private evaluation is a release of its own
      },
      declined: (e: { reason: string }) => {
        this.declines.inc({ reason: String(e.reason).slice(0, 32) });
        updateEpsilon();
      },
      refused: (e: { error?: { code?: number } }) => {
        const code = e.error?.code;
        this.refusals.inc({ code: code === undefined ? 'UNKNOWN' : (grpcStatus[code] ?? String(code)) });
      },
    };
    for (const [event, handler] of Object.entries(handlers)) client.on(event, handler);
    return () => {
      for (const [event, handler] of Object.entries(handlers)) client.off(event, handler);
    };
  }

  /** The node stops (registration no longer counts as ready). */
  close(): void {
    this.closed = true;
    this.registered.set(0);
  }

  /** For /readyz: null once registered with the coordinator, else what is missing. */
  notReady(): string | null {
    if (this.closed) return 'stopped';
    return this.registeredRun ? null : 'not registered with the coordinator';
  }
}
