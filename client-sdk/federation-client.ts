// FederationClient: what a bank or hospital runs, from its own code or through `dpfed client`.
// connect → register → loop { pull task → train or evaluate → push } until the run is done.
// Data never leaves the institution: only model updates (clipped, noised, masked as configured) and
// score histograms of its validation split do. This file holds registration, the run loop and the
// dispatch of tasks; each kind of answer lives in its own file:
//   client-sdk/training-release.ts        TRAIN: train, clip, record, send (or re-send) the update
//   client-sdk/evaluation-release.ts      EVALUATE, CROSS_SITE_EVALUATE: exact, private, cross-site
//   client-sdk/secure-sum-participant.ts  the SecAgg steps of a secure sum
//   client-sdk/ckks-participant.ts        CKKS: key generation, encryption, decryption of the sum
//   client-sdk/coordinator-retry.ts       reconnecting to a coordinator that is away or restarted
//   client-sdk/refused-tasks.ts           refused tasks, not handled again in a loop
//   client-sdk/coordinator-head-receipts.ts  receipts of the coordinator's ledger head
//   client-sdk/held-models.ts             the global models received
import * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import type { IdentityKey } from '@dpfed/privacy/identity';
import type { CoordinatorLink } from '@dpfed/proto/coordinator-link';
import { isUnreachable, mustRegisterAgain, type FederationError } from '@dpfed/proto/federation-error';
import { modelSpecFromMessage } from '@dpfed/proto/model-spec';
import { parseTaskConfig } from '@dpfed/proto/task-config';
import type { TlsMaterial } from '@dpfed/proto/tls-credentials';
import type { WireBytes } from '@dpfed/proto/wire-byte-counter';
import type { Envelope, TaskMsg } from '@dpfed/proto/wire';
import { CkksParticipant } from './ckks-participant.ts';
import type { ClientPrivacy } from './client-privacy.ts';
import { CoordinatorHeadReceipts } from './coordinator-head-receipts.ts';
import { connectionCredentials, CoordinatorConnection } from './coordinator-connection.ts';
import { isStatus, jittered, withReconnect, type RetryContext } from './coordinator-retry.ts';
import { EvaluationRelease } from './evaluation-release.ts';
import { HeldModels } from './held-models.ts';
import type { Learner, TaskContext } from './learner.ts';
import { describeLocalMetrics, LocalModelView, type LocalModelMetrics } from './local-metrics.ts';
import type { ParticipantChannel } from './participant-channel.ts';
import { ProtocolRefusal } from './protocol-refusal.ts';
import { RefusedTasks } from './refused-tasks.ts';
import { RunPreparation } from './run-preparation.ts';
import { signedRegistration } from './registration-request.ts';
import { checkRunSchema, schemaHashBytes } from './run-schema-check.ts';
import { SecureSumParticipant } from './secure-sum-participant.ts';
import { TrainingRelease } from './training-release.ts';

export { DEFAULT_RECONNECT_FOR_MS } from './coordinator-retry.ts';
export { SchemaMismatchError } from './run-schema-check.ts';

export interface FederationClientOptions {
  /** The coordinator's gRPC address (host:port); not needed with `link`. */
  coordinator?: string;
  /**
   * Another transport to the coordinator instead of gRPC (proto/coordinator-link.ts), e.g. the in-memory
   * link of a simulation; `coordinator`, `tls`, `insecure` and `wireBytes` are then not used.
   */
  link?: CoordinatorLink;
  institutionId: string;
  identity: IdentityKey;
  learner: Learner;
  /** DP bookkeeping at the data holder (budget, local ledger, own calibration); required for record and client mode. */
  privacy?: ClientPrivacy;
  /**
   * A public example count the institution chooses to declare at registration, used (capped by the run's
   * public cap) as its FedAvg weight; none by default (equal weights). The true row count is never sent.
   */
  declaredExamples?: number;
  budget?: { epsilon: number; delta: number };
  pollMs?: number;
  /**
   * How long to keep retrying an unreachable coordinator before giving up (default 10 minutes): a client
   * started before its coordinator joins when it comes up; one whose coordinator restarts waits for it.
   */
  reconnectForMs?: number;
  log?: (line: string) => void;
  /**
   * TLS to the coordinator: the federation CA (the only one trusted) and, for mutual TLS, this
   * institution's certificate and key. One of `tls` and `insecure` is required.
   */
  tls?: TlsMaterial;
  /** Plaintext gRPC (no TLS): only when asked for explicitly. */
  insecure?: boolean;
  /** Told the bytes of every gRPC message sent and received (metrics: client-sdk/client-metrics.ts). */
  wireBytes?: WireBytes;
  /**
   * The institution's own choice to sit a round out (a maintenance window, or a simulated dropout in
   * `dpfed sim`): asked with each TRAIN task; a reason (text) declines the task with reason 'unavailable'
   * before anything is trained or spent, and the coordinator closes the round without this institution.
   */
  sitsOut?: (task: TaskContext) => string | null;
  /**
   * This institution's own metrics of every global model it receives, on its validation rows
   * (client-sdk/local-metrics.ts): logged, emitted as 'local-metrics' and returned in the run's result;
   * never sent. Default true; false skips the computation.
   */
  localMetrics?: boolean;
}

export interface ClientRunResult {
  roundsTrained: number;
  roundsEvaluated: number;
  declined: string | null;
  doneMessage: string;
  /** This institution's own metrics of each global model it received (absent with localMetrics: false); never sent. */
  localMetrics?: LocalModelMetrics[];
}

/**
 * Events (EventEmitter): 'registered' {runId}; 'trained' {round, metrics}; 'evaluated' {round, loss,
 * accuracy, private?}; 'declined' {round, reason, detail, projectedEpsilon, budgetEpsilon}; 'released'
 * {round, digest}; 'participation' {round, joined} (client-level DP: the secret coin, for the
 * institution's own code only); 'refused', 'refused-again', 'secagg-refused', 'receipt-conflict';
 * 'local-metrics' LocalModelMetrics (client-sdk/local-metrics.ts): a global model's exact metrics on
 * this institution's validation rows, once per model, never sent anywhere; 'cross-site-evaluated' {round,
 * sigma} (this institution's own histograms of the final model sent, sigma 0 when exact).
 */
export class FederationClient extends EventEmitter {
  private readonly connection: CoordinatorLink;
  private session: Uint8Array = new Uint8Array(0);
  private runId = '';
  private stopped = false;
  private declinedForBudget: string | null = null;
  /** Wakes the run loop from a pause (close/stop). */
  private wake: (() => void) | null = null;
  /** This institution's own metrics of the models it receives (null with localMetrics: false). */
  private readonly localView: LocalModelView | null;
  private readonly receipts: CoordinatorHeadReceipts;
  private readonly refusedTasks: RefusedTasks;
  /** What the task handlers below need of this client: its link, log, events and decline. */
  private readonly channel: ParticipantChannel;
  /** What retrying and pausing need of this client. */
  private readonly retry: RetryContext;
  private readonly models: HeldModels;
  private readonly secureSum: SecureSumParticipant;
  private readonly ckks: CkksParticipant;
  private readonly preparation: RunPreparation;
  private readonly training: TrainingRelease;
  private readonly evaluation: EvaluationRelease;
  constructor(private readonly options: FederationClientOptions) {
    super();
    this.localView =
      options.localMetrics === false
        ? null
        : new LocalModelView(options.learner, (metrics) => {
            this.log(describeLocalMetrics(metrics));
            this.emit('local-metrics', metrics);
          });
    if (options.link) this.connection = options.link;
    else if (options.coordinator) this.connection = new CoordinatorConnection(options.coordinator, connectionCredentials(options), options.wireBytes);
    else throw new Error("coordinator: give the coordinator's address (or a link: a CoordinatorLink of your own transport)");
    const log = (line: string) => this.log(line);
    const emit = (event: string, payload: unknown) => void this.emit(event, payload);
    this.channel = {
      connection: this.connection,
      log,
      emit,
      decline: (envelope, reason, detail, projectedEpsilon, budgetEpsilon) => this.decline(envelope, reason, detail, projectedEpsilon, budgetEpsilon),
    };
    const connection = this.connection;
    this.retry = {
      get address() {
        return connection.address;
      },
      get reconnectForMs() {
        return options.reconnectForMs;
      },
      stopped: () => this.stopped,
      sleep: (ms) => this.sleep(ms),
      register: () => this.register(),
      log,
    };
    this.receipts = new CoordinatorHeadReceipts(options.privacy, log, emit);
    this.refusedTasks = new RefusedTasks({ sleep: this.retry.sleep, stopped: this.retry.stopped, emit });
    this.models = new HeldModels(this.connection, log);
    this.secureSum = new SecureSumParticipant(this.connection, options);
    this.ckks = new CkksParticipant(this.channel, options);
    this.preparation = new RunPreparation({ learner: options.learner, privacy: options.privacy, log, prepared: (event) => emit('prepared', event) });
    this.training = new TrainingRelease(this.channel, options, { models: this.models, secureSum: this.secureSum, ckks: this.ckks });
    this.evaluation = new EvaluationRelease(this.channel, { learner: options.learner, privacy: options.privacy, models: this.models, secureSum: this.secureSum, localView: this.localView });
  }

  private log(line: string): void {
    this.options.log?.(`[${this.options.institutionId}] ${line}`);
  }

  close(): void {
    this.stopped = true;
    this.wake?.();
    this.ckks.dispose();
    this.connection.close();
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /** Waits `ms`, or until close()/stop(). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self.wake === done) self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }

  /**
   * Challenge, then Register with a signed declaration: the coordinator's nonce, this institution's budget and
   * declared fields, and the head of its own ledger with the hash of the row the coordinator holds a receipt
   * for (so the coordinator can tell a wiped, truncated or replaced ledger). A refusal naming ledger_head is
   * FAILED_PRECONDITION and is not retried. The institution first compares its data schema with the run's
   * (client-sdk/run-schema-check.ts): on a mismatch it refuses locally with SchemaMismatchError.
   */
  async register(): Promise<void> {
    const { identity, institutionId, learner, budget, privacy, declaredExamples } = this.options;
    const schemaHash = schemaHashBytes(learner.schemaHash);
    const challenge = await this.connection.challenge({ institutionId });
    checkRunSchema(challenge.schemaJson, learner);
    const anchor = challenge.receiptSeq > 0 ? privacy?.rowHashAt?.(challenge.receiptSeq) : undefined;
    const response = await this.connection.register(
      signedRegistration(challenge, {
        institutionId,
        identity,
        budget: budget ?? null,
        declaredExamples: declaredExamples ?? 0,
        schemaHash,
        ledgerHead: privacy?.signedHead?.() ?? null,
        anchorHash: anchor,
      }),
    );
    if (!Buffer.from(response.coordinatorPublicKey).equals(Buffer.from(challenge.coordinatorPublicKey))) {
      throw new Error('register: the coordinator answered the challenge and the registration with different keys');
    }
    this.receipts.trust(new Uint8Array(response.coordinatorPublicKey));
    this.session = response.session;
    this.runId = response.runId;
    this.log(`registered with ${this.connection.address}, run ${this.runId}`);
    this.emit('registered', { runId: this.runId });
  }

  private envelope(round = 0, modelVersion = 0): Envelope {
    return { runId: this.runId, round, modelVersion, institutionId: this.options.institutionId, session: this.session };
  }

  /** Runs tasks until the coordinator says DONE (or stop()). */
  async run(): Promise<ClientRunResult> {
    await withReconnect(() => this.register(), this.retry);
    const result: ClientRunResult = { roundsTrained: 0, roundsEvaluated: 0, declined: null, doneMessage: '' };
    // the first poll asks for a WAIT at once, whose configuration this institution prepares for (run-preparation.ts)
    let first = this.preparation.able;
    while (!this.stopped) {
      const waitMs = first ? 0 : (this.options.pollMs ?? 30_000);
      const task = await withReconnect(() => this.connection.pullTask(this.envelope(), waitMs), this.retry);
      this.receipts.keep(task);
      if (task.kind === 'DONE') {
        result.doneMessage = task.message;
        result.declined = this.declinedForBudget;
        result.roundsTrained = this.training.produced;
        if (this.localView) result.localMetrics = this.localView.all;
        this.log(`done: ${task.message}`);
        break;
      }
      if (task.kind === 'WAIT') {
        const prepared = task.config !== undefined && this.preparation.prepare(task.envelope.runId, () => this.context(task));
        if (task.retryAfterMs > 0 && !prepared && !first) await this.sleep(jittered(task.retryAfterMs));
        first = false;
        continue;
      }
      first = false;
      if (await this.refusedTasks.refusedBefore(task)) continue;
      try {
        await this.handle(task, result);
      } catch (error) {
        const gone = !this.stopped && (isUnreachable(error) || mustRegisterAgain(error));
        if (!gone && isStatus(error, grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION, grpc.status.PERMISSION_DENIED)) {
          this.log(`task ${task.kind} round ${task.envelope.round} refused by the coordinator: ${(error as FederationError).details}`);
          this.refusedTasks.remember(task);
          this.emit('refused', { task, error });
          continue;
        }
        if (gone) {
          // The coordinator went away mid-task or forgot this session (e.g. it restarted): the next pull
          // reconnects and registers again, and a re-issued TRAIN re-sends the update already released (no
          // new privacy spend).
          this.log(`task ${task.kind} round ${task.envelope.round}: coordinator unreachable (${(error as FederationError).details}); waiting for it to re-issue the task`);
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
      spec: modelSpecFromMessage(task.modelSpec),
      config: parseTaskConfig(task.config),
      modelId: task.modelId,
    };
  }

  private async handle(task: TaskMsg, result: ClientRunResult): Promise<void> {
    const ctx = this.context(task);
    const envelope = this.envelope(ctx.round, ctx.modelVersion);
    try {
      this.models.keepAttached(task, ctx.spec);
      switch (task.kind) {
        case 'TRAIN':
          await this.training.train(ctx, envelope, task.secagg ?? null, task.ckks && task.ckks.publicKey.length > 0 ? task.ckks : null);
          result.roundsTrained = this.training.produced;
          await this.observeLocally(ctx);
          return;
        case 'EVALUATE':
          await this.evaluation.evaluate(ctx, envelope, task.secagg ?? null);
          result.roundsEvaluated++;
          await this.observeLocally(ctx);
          return;
        case 'CROSS_SITE_EVALUATE':
          await this.evaluation.crossSiteEvaluate(ctx, envelope);
          return;
        case 'CKKS_KEYGEN':
          await this.ckks.keygen(envelope);
          return;
        case 'CKKS_DECRYPT':
          await this.ckks.decrypt(envelope, task);
          return;
        case 'SECAGG_SHARE_KEYS':
        case 'SECAGG_MASKED_INPUT':
        case 'SECAGG_UNMASK':
          await this.secureSum.step(task, envelope);
          return;
        default:
          throw new Error(`unsupported task kind ${task.kind}`);
      }
    } catch (error) {
      if (error instanceof ProtocolRefusal) {
        // Refusing is the protocol's defence (e.g. a request for both shares of one peer): the institution
        // sends nothing of the step and leaves the sum (a dropout the others recover from). It says so once,
        // so the coordinator closes the phase without waiting for it, and it never handles the task again.
        this.log(`secure aggregation, round ${ctx.round}: refused: ${error.message}`);
        this.refusedTasks.remember(task);
        this.emit('secagg-refused', { task, reason: error.message });
        await this.connection.decline({ envelope, reason: 'refused', projectedEpsilon: 0, budgetEpsilon: 0, detail: `${task.kind}: ${error.message}` }).catch(() => undefined);
        return;
      }
      throw error;
    }
  }

  /** This institution's own metrics of the task's model, when it holds that model (after the task's answer is sent; never sent). */
  private async observeLocally(ctx: TaskContext): Promise<void> {
    if (!this.localView) return;
    try {
      await this.localView.observe(ctx, this.models.held(ctx.modelId));
    } catch (error) {
      this.log(`round ${ctx.round}: local metrics of the model not computed: ${(error as Error).message}`);
    }
  }

  private async decline(envelope: Envelope, reason: string, detail: string, projectedEpsilon = 0, budgetEpsilon = 0): Promise<void> {
    this.log(`round ${envelope.round}: declining (${reason}): ${detail}`);
    await this.connection.decline({ envelope, reason, projectedEpsilon, budgetEpsilon, detail });
    this.emit('declined', { round: envelope.round, reason, detail, projectedEpsilon, budgetEpsilon });
    if (reason === 'budget') this.declinedForBudget = detail;
  }
}
