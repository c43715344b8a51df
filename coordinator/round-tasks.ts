// The task messages a run posts: envelope (run, round, model version), the model spec, the round's task
// configuration, and the id of the model the task refers to (so a client can use its cached copy).
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
  ) {
    this.specMessage = modelSpecMessage(config.modelSpec);
  }

  /** Configure: a round's task configuration (the run's, with the strategy's settings for the round and the round's seed). */
  configFor(round: number, strategy: Strategy): TaskConfig {
    return { ...this.config.task, strategy: strategy.name, proximalMu: strategy.configureFit(round).proximalMu, seed: `${this.config.seed}:${round}` };
  }

  /** A task of kind `kind` while `round` runs. */
  task(kind: TaskKind, round: number, o: TaskOptions = {}): TaskMsg {
    const modelVersion = o.modelVersion ?? this.models.version;
    return {
      envelope: { runId: this.runId, round, modelVersion, institutionId: '', session: Buffer.alloc(0) },
      kind,
      modelSpec: this.specMessage,
      config: o.config && taskConfigMessage(o.config),
      retryAfterMs: o.retryAfterMs ?? 0,
      message: o.message ?? '',
      secagg: undefined,
      modelId: this.models.idOf(modelVersion, round),
    };
  }
}
