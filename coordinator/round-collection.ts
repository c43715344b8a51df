// The pieces a round loop plugs in for each collection (training updates, then evaluations): what they
// are told about the round (RoundContext), and what the loop and the service calls ask of them
// (RoundCollection). Only one collection of a round is open at a time; every incoming message is routed
// to it by its route, and a route the open collection does not take is refused (result-routing.ts).
import type { ReleasePolicy } from '@dpfed/privacy/release-policy';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { Envelope, ResultHeaderMsg, SecAggMessageMsg, TaskKind, TaskMsg } from '@dpfed/proto/wire';
import type { CkksKey } from './ckks-collection.ts';
import type { Institution } from './institution-registry.ts';
import type { ParameterShape } from './result-checks.ts';
import type { ResultRoute } from './result-routing.ts';
import { checkTrainingEvent, type RoundPrivacy } from './round-privacy.ts';
import type { ResultSink } from './round-types.ts';
import type { RunConfig } from './run-config.ts';
import { invalidArgument } from './rpc-error.ts';
import type { TaskBoard } from './task-board.ts';
import type { VectorPool } from './vector-pool.ts';
import type { WeightedSumBuffer } from './weighted-sum.ts';

/** What outlives a round: buffers reused from round to round, and the run's CKKS key once published. */
export interface RunResources {
  /** Vectors that receive plain updates. */
  readonly updateVectors: VectorPool;
  /** The float64 buffer of the arrival sum. */
  readonly arrivalBuffer: WeightedSumBuffer;
  /** The run's CKKS public key, published by its key holder in this coordinator process. */
  ckksKey: CkksKey | null;
}

/** One round as its collections see it. */
export interface RoundContext {
  readonly runId: string;
  readonly round: number;
  /** The committed model the round trains from. */
  readonly modelVersion: number;
  readonly global: Float32Array;
  /** The model's parameter tensors in spec order. */
  readonly shapes: readonly ParameterShape[];
  /** The institutions the round was offered to. */
  readonly participants: readonly Institution[];
  /** Each participant's weight: the release policy's weight of its declared size. */
  readonly weights: ReadonlyMap<string, number>;
  readonly config: RunConfig;
  /** The privacy layer of training releases (bounds, noise placement, weights, divisor). */
  readonly policy: ReleasePolicy;
  /** The ledger side of privacy: event checks and the recording of revealed sums. */
  readonly privacy?: RoundPrivacy;
  readonly board: TaskBoard;
  /** A registered institution by id (undefined when unknown). */
  institution(id: string): Institution | undefined;
  readonly resources: RunResources;
  /** A task of this round with its task configuration, for the model of `modelVersion`. */
  task(kind: TaskKind, modelVersion: number): TaskMsg;
  /** Throws FAILED_PRECONDITION unless the envelope is of this run. */
  checkRun(envelope: Envelope): void;
  /** Throws FAILED_PRECONDITION unless the envelope is of this run and round, for `modelVersion`. */
  checkRound(envelope: Envelope, modelVersion: number): void;
}

/** A collection of one round: it posts its tasks, takes the answers routed to it, and resolves with T. */
export interface RoundCollection<T> {
  /** Whether it takes messages of `route` now (results, secure-aggregation messages, artifacts). */
  accepts(route: ResultRoute): boolean;
  /** Posts the tasks and collects until every participant answered or the deadlines passed. */
  run(): Promise<T>;
  /** Whether `id` still owes an answer to the step now open (the liveness rules drop it early). */
  awaiting(id: string): boolean;
  /** `id` is gone: it leaves the step now instead of at the deadline. */
  drop(id: string, detail: string): void;
  /** `id` declined its task: it leaves the collection now. */
  decline(id: string, detail: string): void;
  /** Ends the collection (coordinator shutdown). */
  stop(): void;
  openResult?(institution: Institution, header: ResultHeaderMsg): ResultSink;
  receiveSecAgg?(institution: Institution, message: SecAggMessageMsg): void;
  /** A download that is not a model (the CKKS sum for its key holder). */
  artifact?(name: string, institution: Institution): NamedTensor[];
}

/** The --min-clients rule: why a round with `reported` of `sampled` answers fails, or null when it may go on. */
export function tooFewReports(round: number, reported: number, sampled: number, minClients: number): string | null {
  return reported < minClients ? `round ${round}: only ${reported} of ${sampled} sampled institutions reported; --min-clients is ${minClients}` : null;
}

/**
 * What a masked or encrypted update's header must satisfy: this round, the global model's version, a
 * training result, and under local DP-SGD a valid signed privacy event.
 */
export function checkHiddenUpdateHeader(ctx: RoundContext, institution: Institution, header: ResultHeaderMsg): void {
  ctx.checkRound(header.envelope, ctx.modelVersion);
  if (header.kind !== 'TRAIN_RESULT') throw invalidArgument(`header.kind: expected TRAIN_RESULT, got ${header.kind}`);
  checkTrainingEvent(ctx.policy, ctx.privacy, institution, ctx.round, ctx.modelVersion, header.privacyEvent);
}
