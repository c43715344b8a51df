// Which collection an incoming message belongs to, from the message alone: an encrypted (CKKS) result, a
// masked (SecAgg) result, a plain update or a plain evaluation, a secure-aggregation message or a CKKS
// public key, or the download of the CKKS sum. The round routes it to its open collection when that
// collection takes the route, and refuses it with the route's own message otherwise.
import type { AggregationMode } from '@dpfed/proto/task-config';
import type { ResultHeaderMsg, SecAggMessageMsg } from '@dpfed/proto/wire';
import { invalidArgument } from './rpc-error.ts';

export type ResultRoute = 'encrypted-result' | 'masked-result' | 'update-result' | 'evaluation-result' | 'secagg-message' | 'ckks-key' | 'ckks-sum';

/** The route of a result stream's header; refuses an unmasked update under secure aggregation and unknown kinds. */
export function resultRoute(header: ResultHeaderMsg, aggregation: AggregationMode): ResultRoute {
  if (header.encrypted || header.kind === 'CKKS_DECRYPTED_SUM') return 'encrypted-result';
  if (header.masked) return 'masked-result';
  if (aggregation !== 'plain' && header.kind === 'TRAIN_RESULT') {
    throw invalidArgument(`header.masked: this run uses ${aggregation} aggregation; updates must be ${aggregation === 'ckks' ? 'encrypted' : 'masked'}`);
  }
  if (header.kind === 'TRAIN_RESULT') return 'update-result';
  if (header.kind === 'EVALUATE_RESULT') return 'evaluation-result';
  throw invalidArgument(`header.kind: unknown result kind ${header.kind}`);
}

/** The route of a PushSecAgg message: a CKKS key holder's public key, or a step of a secure sum. */
export function secAggRoute(message: SecAggMessageMsg): ResultRoute {
  return message.ckksPublicKey ? 'ckks-key' : 'secagg-message';
}

/** The refusal (FAILED_PRECONDITION message) of a message whose route no open collection takes. */
export function notCollecting(route: ResultRoute, round: number, phase: string): string {
  switch (route) {
    case 'encrypted-result':
      return `envelope.round: round ${round} is not collecting CKKS results (phase ${phase})`;
    case 'masked-result':
    case 'secagg-message':
      return `envelope.round: round ${round} is not running a secure sum (phase ${phase})`;
    case 'update-result':
      return `envelope.round: round ${round} is not collecting training results (phase ${phase})`;
    case 'evaluation-result':
      return `envelope.round: round ${round} is not collecting evaluations (phase ${phase})`;
    case 'ckks-key':
      return `envelope.round: round ${round} is not setting up CKKS keys`;
    case 'ckks-sum':
      return 'artifact: no CKKS sum is awaiting decryption in this round';
  }
}
