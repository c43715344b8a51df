// A FederationClient's events as structured log lines. The institution is on every line (the logger's
// base), the run once the client has registered, the round and phase where an event is about one.
// Only public facts: no loss, accuracy or metrics of the local data, no row counts, no session token.
import type { Logger } from '@dpfed/proto/logger';
import type { FederationClient } from './federation-client.ts';

/** A per-line context function (LoggerOptions.context) and the hook that keeps it current. */
export function clientContext(): { context: () => Record<string, unknown>; observe(client: FederationClient): void } {
  let run: string | undefined;
  return {
    context: () => (run ? { run } : {}),
    observe(client) {
      client.on('registered', (e: { runId: string }) => (run = e.runId));
    },
  };
}

/** Logs `client`'s events to `logger`; returns the unsubscriber. */
export function logClientEvents(client: FederationClient, logger: Logger): () => void {
  const handlers: Record<string, (payload: any) => void> = {
    registered: (e: { runId: string }) => logger.info({ run: e.runId, phase: 'register' }, 'registered with the coordinator'),
    prepared: (e: { runId: string; seconds: number }) => logger.info({ run: e.runId, phase: 'prepare', seconds: e.seconds }, 'prepared for the first round'),
    trained: (e: { round: number }) => logger.info({ round: e.round, phase: 'train' }, 'update sent'),
    evaluated: (e: { round: number }) => logger.info({ round: e.round, phase: 'evaluate' }, 'evaluation sent'),
    declined: (e: { round?: number; reason: string; projectedEpsilon: number; budgetEpsilon: number }) =>
      logger.warn({ round: e.round, phase: 'train', reason: e.reason, projectedEpsilon: e.projectedEpsilon, budgetEpsilon: e.budgetEpsilon }, 'declined the round'),
    refused: (e: { task: { kind: string; envelope: { round: number } }; error: { code?: number; details?: string } }) =>
      logger.warn({ round: e.task.envelope.round, phase: e.task.kind === 'EVALUATE' ? 'evaluate' : 'train', code: e.error.code, reason: e.error.details }, 'the coordinator refused the answer'),
  };
  for (const [event, handler] of Object.entries(handlers)) client.on(event, handler);
  return () => {
    for (const [event, handler] of Object.entries(handlers)) client.off(event, handler);
  };
}
