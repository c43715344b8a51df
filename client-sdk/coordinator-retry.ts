// Keeping a FederationClient going while its coordinator is away: a call that finds the coordinator
// unreachable, or that the coordinator refuses because it forgot the session (it restarted), is retried
// after a jittered pause that doubles, registering again before each retry, until `reconnectForMs` has
// passed. A refused re-registration (ledger behind the coordinator's receipt, wrong schema, not enrolled)
// is final.
import * as grpc from '@grpc/grpc-js';
import { randomInt } from 'node:crypto';
import { isUnreachable, mustRegisterAgain, type FederationError } from '@dpfed/proto/federation-error';
import { SchemaMismatchError } from './run-schema-check.ts';

/** The default of FederationClientOptions.reconnectForMs (`dpfed client --connect-timeout`). */
export const DEFAULT_RECONNECT_FOR_MS = 10 * 60_000;
/** Retry pauses while the coordinator is unreachable: from 200 ms, doubling, up to 5 s, jittered. */
const RECONNECT_BACKOFF = { initialMs: 200, maxMs: 5_000 } as const;

/** Whether `error` is a gRPC error with one of `codes`. */
export const isStatus = (error: unknown, ...codes: grpc.status[]) => codes.includes((error as grpc.ServiceError)?.code);

/** Between half and all of `ms` (CSPRNG), so many clients do not retry in lockstep. */
export function jittered(ms: number): number {
  const half = Math.floor(ms / 2);
  return half + randomInt(0, ms - half + 1);
}

/** What a retry needs of its client. */
export interface RetryContext {
  /** The coordinator's address, for the log line. */
  readonly address: string;
  /** How long to keep retrying (default DEFAULT_RECONNECT_FOR_MS). */
  readonly reconnectForMs?: number;
  /** True once the client was closed or stopped: the error is then thrown, not retried. */
  stopped(): boolean;
  /** Waits `ms`, or less when the client is closed or stopped. */
  sleep(ms: number): Promise<void>;
  /** Registers again (the coordinator may have forgotten the session). */
  register(): Promise<void>;
  log(line: string): void;
}

/** Retries `fn` while the coordinator is unreachable or has forgotten our session (it restarted). */
export async function withReconnect<T>(fn: () => Promise<T>, client: RetryContext): Promise<T> {
  const giveUpAt = Date.now() + (client.reconnectForMs ?? DEFAULT_RECONNECT_FOR_MS);
  let delay: number = RECONNECT_BACKOFF.initialMs;
  let announced = false;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (client.stopped()) throw error;
      const details = (error as FederationError).details ?? '';
      const forgotten = mustRegisterAgain(error);
      const unreachable = isUnreachable(error);
      if ((!forgotten && !unreachable) || Date.now() > giveUpAt) throw error;
      if (unreachable && !announced) {
        client.log(`coordinator ${client.address} unreachable (${details || 'no details'}); retrying for up to ${Math.round((giveUpAt - Date.now()) / 1000)} s`);
        announced = true;
      }
      await client.sleep(jittered(delay));
      if (client.stopped()) throw error;
      delay = Math.min(delay * 2, RECONNECT_BACKOFF.maxMs);
      try {
        await client.register();
      } catch (registerError) {
        // A refusal (e.g. ledger_head: this institution's ledger is behind the coordinator's receipt) is final.
        if (registerError instanceof SchemaMismatchError) throw registerError;
        if (isStatus(registerError, grpc.status.FAILED_PRECONDITION, grpc.status.PERMISSION_DENIED, grpc.status.INVALID_ARGUMENT)) throw registerError;
        /* still unreachable: retry */
      }
    }
  }
}
