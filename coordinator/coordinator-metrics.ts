// The coordinator's Prometheus series, in a registry of its own (several coordinators may share a
// process, as in the tests). Fed by the round machine's events, by the gRPC service's serialisers
// (bytes in and out) and by the places where a failed request becomes a gRPC status (refusals).
//
// Labels are bounded: phases, gRPC codes, refusal reasons (the field at fault, a short token), decline
// reasons, and the ids of enrolled institutions. No label or value carries data or a secret.
import { status as grpcStatus } from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { WireBytes } from '@dpfed/proto/wire-byte-counter';
import type { RoundMachine, RoundSummary } from './round-machine.ts';

const PHASES = ['train', 'evaluate', 'commit'] as const;

/**
 * The short reason of a refusal: the top-level field its message starts with ("tensor.w1: …" →
 * "tensor"), else "other". Only that first word: what follows may name things an institution chose
 * (tensor names), which would make the label's values unbounded.
 */
export function refusalReason(message: string): string {
  return /^([A-Za-z_][A-Za-z0-9_]{0,31})[.:[]/.exec(message)?.[1] ?? 'other';
}

export class CoordinatorMetrics {
  readonly registry = new Registry();
  /** Counts message bytes at the gRPC service (pass to startCoordinator via `metrics`). */
  readonly wireBytes: WireBytes;
  private runLoaded = false;
  private grpcBound = false;

  private readonly roundsCommitted = new Counter({ name: 'dpfed_rounds_committed_total', help: 'Rounds committed (global model and ledger written)', registers: [this.registry] });
  private readonly roundsFailed = new Counter({ name: 'dpfed_rounds_failed_total', help: 'Rounds that failed and are retried', registers: [this.registry] });
  private readonly evaluationsAborted = new Counter({
    name: 'dpfed_evaluations_aborted_total',
    help: 'Round evaluations abandoned (the candidate model was not committed)',
    registers: [this.registry],
  });
  private readonly participants = new Gauge({ name: 'dpfed_round_participants', help: 'Institutions whose update entered the last committed round', registers: [this.registry] });
  private readonly participantsHistogram = new Histogram({
    name: 'dpfed_round_participants_distribution',
    help: 'Institutions whose update entered each committed round',
    buckets: [1, 2, 3, 4, 5, 8, 10, 20, 50, 100],
    registers: [this.registry],
  });
  private readonly phaseSeconds = new Histogram({
    name: 'dpfed_round_phase_seconds',
    help: "Duration of a committed round's phases: train (collection and aggregation), evaluate, commit",
    labelNames: ['phase'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  private readonly roundSeconds = new Histogram({
    name: 'dpfed_round_seconds',
    help: 'Wall-clock duration of committed rounds',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [this.registry],
  });
  private readonly currentRound = new Gauge({ name: 'dpfed_round', help: 'Last committed round', registers: [this.registry] });
  private readonly dropouts = new Counter({ name: 'dpfed_dropouts_total', help: 'Institutions offered a round that did not report in time', labelNames: ['institution'], registers: [this.registry] });
  private readonly declines = new Counter({ name: 'dpfed_declines_total', help: 'Rounds institutions declined, by reason', labelNames: ['reason'], registers: [this.registry] });
  private readonly epsilon = new Gauge({
    name: 'dpfed_epsilon_spent',
    help: "Epsilon each institution has spent in this run, from the coordinator's ledger after each commit",
    labelNames: ['institution'],
    registers: [this.registry],
  });
  private readonly epsilonBudget = new Gauge({
    name: 'dpfed_epsilon_budget',
    help: 'Epsilon budget an institution declared (absent when none)',
    labelNames: ['institution'],
    registers: [this.registry],
  });
  private readonly bytesIn = new Counter({ name: 'dpfed_bytes_received_total', help: 'gRPC message bytes received from institutions', registers: [this.registry] });
  private readonly bytesOut = new Counter({ name: 'dpfed_bytes_sent_total', help: 'gRPC message bytes sent to institutions', registers: [this.registry] });
  private readonly refused = new Counter({
    name: 'dpfed_refused_requests_total',
    help: 'Requests refused, by gRPC code and short reason (the field at fault)',
    labelNames: ['code', 'reason'],
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'dpfed_coordinator_' });
    // prom-client counters add at scrape-time precision; the serialisers call these once per message
    this.wireBytes = { sent: (n) => this.bytesOut.inc(n), received: (n) => this.bytesIn.inc(n) };
  }

  /** Counts a refused request (a gRPC status other than OK sent to an institution). */
  refusal(code: grpcStatus, message: string): void {
    this.refused.inc({ code: grpcStatus[code] ?? String(code), reason: code === grpcStatus.INTERNAL ? 'internal' : refusalReason(message) });
  }

  /** The gRPC server is bound, or (false) shutting down (called by startCoordinator). */
  bound(up = true): void {
    this.grpcBound = up;
  }

  /** Subscribes to `machine`'s events; the run counts as loaded from here on. Returns the unsubscriber. */
  observe(machine: RoundMachine): () => void {
    const onRound = (s: RoundSummary) => {
      this.roundsCommitted.inc();
      this.currentRound.set(s.round);
      this.participants.set(s.participants);
      this.participantsHistogram.observe(s.participants);
      this.roundSeconds.observe(s.seconds);
      for (const phase of PHASES) this.phaseSeconds.observe({ phase }, (s.phaseMs?.[phase] ?? 0) / 1000);
      for (const id of s.dropped) this.dropouts.inc({ institution: id });
      for (const p of machine.privacySummary()) {
        this.epsilon.set({ institution: p.id }, p.epsilon);
        if (p.budget !== null) this.epsilonBudget.set({ institution: p.id }, p.budget);
      }
    };
    const onFailed = () => this.roundsFailed.inc();
    const onAborted = () => this.evaluationsAborted.inc();
    const onDeclined = (e: { reason: string }) => this.declines.inc({ reason: String(e.reason).slice(0, 32) });
    machine.on('round', onRound);
    machine.on('round-failed', onFailed);
    machine.on('evaluation-aborted', onAborted);
    machine.on('declined', onDeclined);
    // a resumed run: the ledger already holds ε from earlier rounds
    for (const p of machine.privacySummary()) this.epsilon.set({ institution: p.id }, p.epsilon);
    this.runLoaded = true;
    return () => {
      machine.off('round', onRound);
      machine.off('round-failed', onFailed);
      machine.off('evaluation-aborted', onAborted);
      machine.off('declined', onDeclined);
    };
  }

  /** For /readyz: null when the gRPC server is bound and the run loaded, else what is missing. */
  notReady(): string | null {
    if (!this.grpcBound) return 'gRPC server not bound';
    if (!this.runLoaded) return 'run not loaded';
    return null;
  }
}
