// Everything that defines a run, as stored with it in SQLite (so a restart resumes the same run).
import type { DataSchema } from '@dpfed/proto/data-schema';
import type { ModelSpec } from '@dpfed/proto/model-spec';
import type { TaskConfig } from '@dpfed/proto/task-config';
import type { StrategyName, StrategyOptions } from './strategy.ts';

export interface RunConfig {
  rounds: number;
  minClients: number;
  /** Institutions to wait for before the first round this coordinator runs (0 = --min-clients). */
  waitFor?: number;
  /** Fraction of live institutions sampled each round (used when sampleCount is 0). */
  sampleFraction: number;
  /** Exact number sampled each round; 0 = use sampleFraction. */
  sampleCount: number;
  roundTimeoutMs: number;
  /** Deadline of each later phase (evaluation, secure-aggregation phases). */
  phaseTimeoutMs: number;
  /**
   * A sampled institution that has not fetched its task this long after it was posted is dropped from
   * the round and not sampled again until it shows life (default 10 s; absent in runs stored before it).
   */
  taskPickupTimeoutMs?: number;
  strategy: StrategyName;
  strategyOptions: StrategyOptions;
  modelSpec: ModelSpec;
  seed: string;
  /**
   * What every task carries. Its `evaluation.crossSite` (--cross-site-evaluation) is the run's cross-site
   * evaluation at the end (coordinator/cross-site-evaluation.ts): it lives in the task so that each
   * institution plans that release into its ε from the first round.
   */
  task: Omit<TaskConfig, 'strategy' | 'proximalMu' | 'seed'>;
  /** Secure aggregation: Shamir threshold as a fraction of the round's participants (at least 2). */
  secaggThresholdFraction: number;
  /** Secure aggregation: the dropout rate the masking graph and threshold are sized to survive. */
  secaggDropoutRate: number;
  /** CKKS: the institution that generates the key pair and decrypts each round's sum (default: the first participant by id). */
  ckksKeyHolder?: string;
  /**
   * The run's public data schema (--schema): sent to institutions in every ChallengeResponse, and a
   * Register whose signed schema_hash differs from its hash is refused. Its feature columns are the
   * model's inputs. Absent: institutions' schemas are not checked.
   */
  schema?: DataSchema;
  /**
   * Which global model the run keeps as its result (--keep): 'last', or 'best', the committed round with the
   * highest recorded global AUC (the private evaluation's signal). Model export takes it when no round is named.
   */
  keep?: 'best' | 'last';
}
