// Why a request to the coordinator failed, as both sides see it: a gRPC status code and a typed reason
// (RefusalReason in federation.proto), never text to match. The coordinator sends the reason with every
// refusal (trailing metadata `dpfed-refusal-reason` on a separate call, CallStatus.reason on the Session
// stream); each transport (gRPC, in-memory) turns a failure into a FederationError carrying both.
import { status } from '@grpc/grpc-js';

/** RefusalReason of federation.proto, by name. */
export const REFUSAL_REASONS = [
  'REFUSAL_REASON_UNSPECIFIED',
  'NOT_REGISTERED',
  'SESSION_NOT_CURRENT',
  'NONCE_INVALID',
  'NOT_ENROLLED',
  'REVOKED',
  'IDENTITY_MISMATCH',
  'INVALID_FIELD',
  'NOT_NOW',
  'STORAGE_UNAVAILABLE',
  'LIMIT_EXCEEDED',
  'INTERNAL_ERROR',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** Trailing-metadata key of the reason on a separate (non-Session) call. */
export const REFUSAL_REASON_METADATA = 'dpfed-refusal-reason';

/** A reason given by name, checked: an unknown name (from a newer coordinator) reads as unspecified. */
export function refusalReasonOf(name: unknown): RefusalReason {
  if (typeof name === 'number') return REFUSAL_REASONS[name] ?? 'REFUSAL_REASON_UNSPECIFIED';
  return (REFUSAL_REASONS as readonly unknown[]).includes(name) ? (name as RefusalReason) : 'REFUSAL_REASON_UNSPECIFIED';
}

/** The reason a refusal with this code carries when its site names none. */
export function defaultReasonFor(code: status): RefusalReason {
  switch (code) {
    case status.INVALID_ARGUMENT:
      return 'INVALID_FIELD';
    case status.FAILED_PRECONDITION:
      return 'NOT_NOW';
    case status.RESOURCE_EXHAUSTED:
      return 'LIMIT_EXCEEDED';
    case status.INTERNAL:
      return 'INTERNAL_ERROR';
    default:
      return 'REFUSAL_REASON_UNSPECIFIED';
  }
}

/** A request the coordinator refused or that could not complete; `details` names the field at fault. */
export class FederationError extends Error {
  constructor(
    readonly code: status,
    readonly details: string,
    readonly reason: RefusalReason = defaultReasonFor(code),
  ) {
    super(`${code} ${status[code] ?? 'UNKNOWN'}: ${details}`);
  }
}

/** The coordinator no longer knows this institution's session (it restarted, or another registration replaced it): register again. */
export function mustRegisterAgain(error: unknown): boolean {
  const reason = (error as { reason?: RefusalReason } | null)?.reason;
  return reason === 'NOT_REGISTERED' || reason === 'SESSION_NOT_CURRENT';
}

/** The coordinator could not be reached or did not answer in time: the request may be tried again later. */
export function isUnreachable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED || code === status.CANCELLED;
}
