// FederationClient: what a bank or hospital runs, from its own code or through `dpfed client`.
// connect → register → loop { pull task → train or evaluate → push } until the run is done.
// Data never leaves the institution: only model updates (clipped, noised, masked as configured) and
// score histograms of its validation split do.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { histogramToVector } from '../privacy/auc-histogram.ts';
import type { IdentityKey } from '../privacy/identity.ts';
import { clipToNorm } from '../privacy/update-clipping.ts';
import { parameterCount, parameterShapes, parseModelSpec, type ModelSpec } from '../proto/model-spec.ts';
import { registrationMessage } from '../proto/registration.ts';
import { parseTaskConfig } from '../proto/task-config.ts';
import type { NamedTensor } from '../proto/tensor-stream.ts';
import { PROTOCOL_VERSION, type Envelope, type PrivacyEventMsg, type ResultHeaderMsg, type TaskMsg } from '../proto/wire.ts';
import type { ClientPrivacy } from './client-privacy.ts';
import { CoordinatorConnection } from './coordinator-connection.ts';
import type { Learner, TaskContext } from './learner.ts';

export interface FederationClientOptions {
  coordinator: string;
  institutionId: string;
  identity: IdentityKey;
  learner: Learner;
  /** Record-level DP bookkeeping at the data holder (budget, local ledger); required for record mode. */
  privacy?: ClientPrivacy;
  budget?: { epsilon: number; delta: number };
  pollMs?: number;
  /** How long to keep retrying an unreachable coordinator before giving up. */
  reconnectForMs?: number;
  log?: (line: string) => void;
}

export interface ClientRunResult {
  roundsTrained: number;
  roundsEvaluated: number;
  declined: string | null;
  doneMessage: string;
}

const isStatus = (error: unknown, ...codes: grpc.status[]) => codes.includes((error as grpc.ServiceError)?.code);

export class FederationClient extends EventEmitter {
  private readonly connection: CoordinatorConnection;
  private session: Uint8Array = new Uint8Array(0);
  private runId = '';
  private stopped = false;
  /** The last update released per (run, round, model version): a retried round resends it instead of spending privacy again. */
  private lastRelease: { key: string; header: ResultHeaderMsg; tensors: NamedTensor[] } | null = null;

  constructor(private readonly options: FederationClientOptions) {
    super();
    this.connection = new CoordinatorConnection(options.coordinator);
  }

  private log(line: string): void {
    this.options.log?.(`[${this.options.institutionId}] ${line}`);
  }

  close(): void {
    this.stopped = true;
    this.connection.close();
  }

  stop(): void {
    this.stopped = true;
  }

  async register(): Promise<void> {
    const { identity, institutionId, learner, budget } = this.options;
    const nonce = randomBytes(16);
    const response = await this.connection.register({
      institutionId,
      identityPublicKey: identity.publicKey,
      protocolVersion: PROTOCOL_VERSION,
      budget: budget ?? null,
      numTrainExamples: learner.numTrainExamples,
      clientVersion: 'dpfed-sdk/0.1.0',
      signature: identity.sign(registrationMessage(institutionId, identity.publicKey, nonce)),
      nonce,
    });
    this.session = response.session;
    this.runId = response.runId;
    this.options.privacy?.setCoordinatorKey(response.coordinatorPublicKey);
    this.log(`registered with ${this.options.coordinator}, run ${this.runId}`);
  }

  private envelope(round = 0, modelVersion = 0): Envelope {
    return { runId: this.runId, round, modelVersion, institutionId: this.options.institutionId, session: this.session };
  }

  /** Retries `fn` while the coordinator is unreachable or has forgotten our session (it restarted). */
  private async withReconnect<T>(fn: () => Promise<T>): Promise<T> {
    const giveUpAt = Date.now() + (this.options.reconnectForMs ?? 60_000);
    let delay = 100;
    for (;;) {
      try {
        return await fn();
      } catch (error) {
        if (this.stopped) throw error;
        const details = (error as grpc.ServiceError).details ?? '';
        const forgotten = isStatus(error, grpc.status.UNAUTHENTICATED) || (isStatus(error, grpc.status.INVALID_ARGUMENT) && details.includes('register first'));
        const unreachable = isStatus(error, grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED);
        if ((!forgotten && !unreachable) || Date.now() > giveUpAt) throw error;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 2000);
        try {
          await this.register();
        } catch {
          /* still unreachable: retry */
        }
      }
    }
  }

  /** Runs tasks until the coordinator says DONE (or stop()). */
  async run(): Promise<ClientRunResult> {
    await this.withReconnect(() => this.register());
    const result: ClientRunResult = { roundsTrained: 0, roundsEvaluated: 0, declined: null, doneMessage: '' };
    while (!this.stopped) {
      const task = await this.withReconnect(() => this.connection.pullTask(this.envelope(), this.options.pollMs ?? 30_000));
      if (task.kind === 'DONE') {
        result.doneMessage = task.message;
        this.log(`done: ${task.message}`);
        break;
      }
      if (task.kind === 'WAIT') continue;
      try {
        await this.handle(task, result);
      } catch (error) {
        if (isStatus(error, grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION, grpc.status.PERMISSION_DENIED)) {
          this.log(`task ${task.kind} round ${task.envelope.round} refused by the coordinator: ${(error as grpc.ServiceError).details}`);
          this.emit('refused', { task, error });
          continue;
        }
        throw error;
      }
    }
    return result;
  }

  private context(task: TaskMsg): TaskContext {
    return {
      runId: task.envelope.runId,
      round: task.envelope.round,
      modelVersion: task.envelope.modelVersion,
      spec: parseModelSpec(task.modelSpecJson),
      config: parseTaskConfig(task.configJson),
    };
  }

  private async handle(task: TaskMsg, result: ClientRunResult): Promise<void> {
    const ctx = this.context(task);
    const envelope = this.envelope(ctx.round, ctx.modelVersion);
    if (task.kind === 'TRAIN') {
      await this.train(ctx, envelope);
      result.roundsTrained++;
    } else if (task.kind === 'EVALUATE') {
      await this.evaluate(ctx, envelope);
      result.roundsEvaluated++;
    } else {
      throw new Error(`unsupported task kind ${task.kind}`);
    }
  }

  private async downloadFlat(envelope: Envelope, spec: ModelSpec): Promise<Float32Array> {
    const tensors = await this.connection.downloadModel(envelope);
    const shapes = parameterShapes(spec);
    const flat = new Float32Array(parameterCount(spec));
    let offset = 0;
    shapes.forEach(({ name }, i) => {
      const t = tensors[i];
      if (!t || t.name !== name || !(t.data instanceof Float32Array)) throw new Error(`model download: expected tensor "${name}" at position ${i}`);
      flat.set(t.data, offset);
      offset += t.data.length;
    });
    if (offset !== flat.length) throw new Error(`model download: expected ${flat.length} parameters, got ${offset}`);
    return flat;
  }

  private async train(ctx: TaskContext, envelope: Envelope): Promise<void> {
    const key = `${ctx.runId}/${ctx.round}/${ctx.modelVersion}`;
    if (this.lastRelease?.key === key) {
      this.log(`round ${ctx.round}: resending the update already released for this round (no new privacy spend)`);
      await this.connection.pushResult({ ...this.lastRelease.header, envelope }, this.lastRelease.tensors);
      return;
    }
    const { config } = ctx;
    let noiseMultiplier: number | null = null;
    if (config.privacy.mode === 'record') {
      if (!this.options.privacy) throw new Error('record-level DP requested but this client has no privacy guard configured');
      const decision = this.options.privacy.beforeRound(ctx, this.options.learner);
      if (!decision.allowed) {
        this.log(`round ${ctx.round}: declining: ${decision.detail}`);
        await this.connection.decline({ envelope, reason: 'budget', projectedEpsilon: decision.projectedEpsilon, budgetEpsilon: decision.budgetEpsilon, detail: decision.detail });
        this.emit('declined', decision);
        return;
      }
      noiseMultiplier = decision.noiseMultiplier;
    }
    const global = await this.downloadFlat(envelope, ctx.spec);
    const t0 = performance.now();
    const outcome = await this.options.learner.train(global, ctx, noiseMultiplier);
    const delta = outcome.params;
    for (let i = 0; i < delta.length; i++) delta[i] -= global[i];
    if (config.privacy.mode === 'client') clipToNorm(delta, config.privacy.client!.updateClipNorm);
    let privacyEvent: PrivacyEventMsg | null = null;
    if (config.privacy.mode === 'record') {
      if (!outcome.mechanism) throw new Error('record-level DP: the learner did not report the mechanism it ran');
      privacyEvent = this.options.privacy!.recordRelease(ctx, outcome.mechanism);
    }
    const header: ResultHeaderMsg = {
      envelope,
      kind: 'TRAIN_RESULT',
      numExamples: outcome.numExamples,
      metrics: { ...outcome.metrics, seconds: (performance.now() - t0) / 1000 },
      privacyEvent,
      tensorCount: 0,
      masked: false,
    };
    const views = parameterShapes(ctx.spec);
    const tensors: NamedTensor[] = [];
    let offset = 0;
    for (const { name, shape } of views) {
      const size = shape.reduce((a, b) => a * b, 1);
      tensors.push({ name, shape, dtype: 'FLOAT32', data: delta.subarray(offset, offset + size) });
      offset += size;
    }
    header.tensorCount = tensors.length;
    this.lastRelease = { key, header, tensors };
    await this.connection.pushResult(header, tensors);
    this.emit('trained', { round: ctx.round, metrics: outcome.metrics });
  }

  private async evaluate(ctx: TaskContext, envelope: Envelope): Promise<void> {
    const model = await this.downloadFlat(envelope, ctx.spec);
    const outcome = await this.options.learner.evaluate(model, ctx);
    const vector = histogramToVector(outcome.histogram);
    const bins = outcome.histogram.bins;
    await this.connection.pushResult(
      {
        envelope,
        kind: 'EVALUATE_RESULT',
        numExamples: outcome.numExamples,
        metrics: { loss: outcome.loss, accuracy: outcome.accuracy },
        privacyEvent: null,
        tensorCount: 2,
        masked: false,
      },
      [
        { name: 'histogram/positive', shape: [bins], dtype: 'UINT32', data: vector.subarray(0, bins) },
        { name: 'histogram/negative', shape: [bins], dtype: 'UINT32', data: vector.subarray(bins, 2 * bins) },
      ],
    );
    this.emit('evaluated', { round: ctx.round, loss: outcome.loss, accuracy: outcome.accuracy });
  }
}
