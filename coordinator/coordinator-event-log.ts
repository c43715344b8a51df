// The round machine's events as structured log lines: each carries the run (child logger), and the
// round and phase it is about. Only public facts go in: counts of institutions, their ids, timings,
// AUC and loss of the global model, reasons. Never an institution's example count (RoundSummary
// carries it per institution; it is left out).
import type { Logger } from '@dpfed/proto/logger';
import type { CrossSiteSummary } from './cross-site-results.ts';
import type { RoundMachine, RoundSummary } from './round-machine.ts';

/** Logs `machine`'s events to `logger`; returns the unsubscriber. The run comes from the logger's context (roundContext) or bindings. */
export function logRoundEvents(machine: RoundMachine, logger: Logger): () => void {
  // each handler takes the payload its event carries (see round-machine.ts)
  const handlers: Record<string, (payload: any) => void> = {
    waiting: (w: { round: number; live: number; needed: number }) => logger.info({ round: w.round, phase: 'waiting', live: w.live, needed: w.needed }, 'waiting for institutions'),
    round: (s: RoundSummary) =>
      logger.info(
        {
          round: s.round,
          phase: 'commit',
          modelVersion: s.modelVersion,
          participants: s.participants,
          auc: s.auc,
          loss: s.loss,
          accuracy: s.accuracy,
          seconds: s.seconds,
          phaseMs: s.phaseMs,
          dropped: s.dropped,
        },
        'round committed',
      ),
    'round-failed': (e: { round: number; reason: string }) => logger.warn({ round: e.round, phase: 'train', reason: e.reason }, 'round failed; retrying'),
    'evaluation-aborted': (e: { round: number; reason: string }) => logger.warn({ round: e.round, phase: 'evaluate', reason: e.reason }, 'evaluation aborted'),
    declined: (e: { institution: string; reason: string; detail: string }) =>
      logger.info({ round: machine.status.round, phase: 'train', institution: e.institution, reason: e.reason, detail: e.detail }, 'institution declined the round'),
    'cross-site': (s: CrossSiteSummary) =>
      logger.info(
        { round: s.round, phase: 'cross-site', private: s.private, institutions: s.institutions.map((r) => ({ id: r.institutionId, status: r.status, auc: r.auc, aucStderr: r.aucStderr })) },
        'cross-site evaluation recorded',
      ),
    done: () => logger.info({ round: undefined, phase: 'done' }, 'run complete'),
  };
  for (const [event, handler] of Object.entries(handlers)) machine.on(event, handler);
  return () => {
    for (const [event, handler] of Object.entries(handlers)) machine.off(event, handler);
  };
}

/**
 * Per-line context (LoggerOptions.context) from a coordinator once it has started: its run, and the
 * round and phase its machine is in (a line that names its own round and phase keeps them).
 */
export function roundContext(coordinator: () => { runId: string; machine: RoundMachine } | undefined): () => Record<string, unknown> {
  return () => {
    const c = coordinator();
    if (!c) return {};
    const status = c.machine.status;
    return { run: c.runId, round: status.round, phase: status.phase };
  };
}
