// The task messages a run posts: envelope (run, round, model version), the model spec, the round's task
// configuration, and the id of the model the task refers to (so a client can use its cached copy). A WAIT
// carries the configuration of the next round too: an institution waiting for its first round prepares
// for it (calibrates its noise, fills its noise ring, loads the model's kernels) before the round starts.
import { modelSpecMessage } from '@dpfed/proto/model-spec';
import type { TaskConfig } from '@dpfed/proto/task-config';
import { taskConfigMessage } from '@dpfed/proto/task-config-message';
import type { ModelSpecMsg, TaskKind, TaskMsg } from '@dpfed/proto/wire';
import type { RoundModels } from './round-models.ts';
import type { RunConfig } from './run-config.ts';
import type { Strategy } from './strategy.ts';

export interface TaskOptions {
  config?: TaskConfig;
  /** The model the task refers to (default: the committed global model). */
  modelVersion?: number;
  message?: string;
  retryAfterMs?: number;
}

export class RoundTasks {
  private readonly specMessage: ModelSpecMsg;

  constructor(
    private readonly runId: string,
    private readonly config: RunConfig,
    private readonly models: RoundModels,
    /** The run's strategy: with it, WAIT tasks carry the next round's configuration. */
    private readonly strategy?: Strategy,
  ) {
    this.specMessage = modelSpecMessage(config.modelSpec);
  }

  /** Configure: a round's task configuration (the run's, with the strategy's settings for the round and the round's seed). */
  configFor(round: number, strategy: Strategy): TaskConfig {
    return { ...this.config.task, strategy: strategy.name, proximalMu: strategy.configureFit(round).proximalMu, seed: `${this.config.seed}:${round}` };
  }

  private configMessage(kind: TaskKind, round: number, config: TaskConfig | undefined) {
    if (config) return taskConfigMessage(config);
    return kind === 'WAIT' && this.strategy ? taskConfigMessage(this.configFor(round + 1, this.strategy)) : undefined;
  }

  /** A task of kind `kind` while `round` runs. */
  task(kind: TaskKind, round: number, o: TaskOptions = {}): TaskMsg {
    const modelVersion = o.modelVersion ?? this.models.version;
    return {
      envelope: { runId: this.runId, round, modelVersion, institutionId: '', session: Buffer.alloc(0) },
      kind,
      modelSpec: this.specMessage,
      config: this.configMessage(kind, round, o.config),
      retryAfterMs: o.retryAfterMs ?? 0,
      message: o.message ?? '',
      secagg: undefined,
      modelId: this.models.idOf(modelVersion, round),
    };
  }
}
