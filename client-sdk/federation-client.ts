// FederationClient: what a bank or hospital runs, from its own code or through `dpfed client`.
// connect → register → loop { pull task → train or evaluate → push } until the run is done.
// Data never leaves the institution: only model updates (clipped, noised, masked as configured) and
// score histograms of its validation split do.
import * as grpc from '@grpc/grpc-js';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { aucFromHistogram, histogramToVector } from '@dpfed/privacy/auc-histogram';
import { addDistributedNoise } from '@dpfed/privacy/distributed-noise';
import { addGaussianNoise } from '@dpfed/privacy/gaussian-noise';
import { CkksDecryptor, CkksEncryptor, createFederationKeys } from '@dpfed/privacy/ckks-plugin';
import { ckksKeyBinding } from '@dpfed/privacy/ckks-key-binding';
import { CKKS_UPDATE_CLIP_RANGE, ckksUpdateVector } from '@dpfed/privacy/ckks-update-encoding';
import { noisyHistogramVector } from '@dpfed/privacy/evaluation-mechanism';
import { encodeEvaluation } from '@dpfed/privacy/evaluation-vector';
import { encodeWeightedUpdate, quantisationFromMessage } from '@dpfed/privacy/quantise';
import type { SecAggCollection } from '@dpfed/privacy/secagg-keys';
import { SecAggClient } from './secagg-client.ts';
import type { IdentityKey } from '@dpfed/privacy/identity';
import { participationCoin, releasePairRefusal, trainingReleasePolicy } from '@dpfed/privacy/release-policy';
import { clipToNorm } from '@dpfed/privacy/update-clipping';
import { modelSpecFromMessage, parameterCount, parameterShapes, type ModelSpec } from '@dpfed/proto/model-spec';
import { CKKS_SUM_ARTIFACT, COLLECTIONS, TENSOR_NAMES } from '@dpfed/proto/shared-names';
import { parseTaskConfig } from '@dpfed/proto/task-config';
import type { TlsMaterial } from '@dpfed/proto/tls-credentials';
import { assembleWhole, flatFloat32, type NamedTensor } from '@dpfed/proto/tensor-stream';
import { type Envelope, type LedgerHeadMsg, type PrivacyEventMsg, type ResultHeaderMsg, type CkksTaskMsg, type SecAggTaskMsg, type TaskMsg } from '@dpfed/proto/wire';
import type { WireBytes } from '@dpfed/proto/wire-byte-counter';
import type { ClientPrivacy } from './client-privacy.ts';
import { connectionCredentials, CoordinatorConnection } from './coordinator-connection.ts';
import type { CoordinatorLink } from '@dpfed/proto/coordinator-link';
import { isUnreachable, mustRegisterAgain, type FederationError } from '@dpfed/proto/federation-error';
import { signedRegistration } from './registration-request.ts';
import { describeSchemaMismatch, parseSchema, schemaHash as hashOfSchema } from '@dpfed/proto/data-schema';
import { BudgetExceededError } from '@dpfed/privacy/ledger';
import { receiptBytes } from '@dpfed/privacy/receipts';
import { verifySignature } from '@dpfed/privacy/identity';
import { subtractGlobal } from './model-delta.ts';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { exitAtTestPoint } from '@dpfed/proto/test-exit-hook';
import type { EvalOutcome, Learner, TaskContext } from './learner.ts';
import { describeLocalMetrics, LocalModelView, type LocalModelMetrics } from './local-metrics.ts';
import { CrossSiteRelease } from './cross-site-release.ts';

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

const isStatus = (error: unknown, ...codes: grpc.status[]) => codes.includes((error as grpc.ServiceError)?.code);

/** The default of FederationClientOptions.reconnectForMs (`dpfed client --connect-timeout`). */
export const DEFAULT_RECONNECT_FOR_MS = 10 * 60_000;
/** Retry pauses while the coordinator is unreachable: from 200 ms, doubling, up to 5 s, jittered. */
const RECONNECT_BACKOFF = { initialMs: 200, maxMs: 5_000 } as const;
/** Pauses before a refused task that comes back is looked at again: from 1 s, doubling, up to 30 s. */
const REFUSED_BACKOFF = { initialMs: 1_000, maxMs: 30_000 } as const;

/** Between half and all of `ms` (CSPRNG), so many clients do not retry in lockstep. */
function jittered(ms: number): number {
  const half = Math.floor(ms / 2);
  return half + randomInt(0, ms - half + 1);
}

/** The first task of a collection (it starts a new attempt of the round's training or evaluation). */
const STARTS_ATTEMPT = new Set(['TRAIN', 'EVALUATE', 'CKKS_KEYGEN']);

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
  /** The coordinator's Ed25519 key, from registration: its ledger heads are verified with it. */
  private coordinatorKey: Uint8Array | null = null;
  private lastCoordinatorHead = '';
  private stopped = false;
  private declinedForBudget: string | null = null;
  /** CKKS key holder: the run's secret key (never sent), and the rounds already decrypted (once each). */
  private readonly ckksSecrets = new Map<string, Uint8Array>();
  private readonly ckksDecrypted = new Set<string>();
  private ckksEncryptor: { keyHex: string; encryptor: CkksEncryptor } | null = null;
  /** The last update released per (run, round, model version): a retried round resends it instead of spending privacy again. */
  private lastRelease: Release | null = null;
  /** The last private evaluation released (per run, round, candidate model and aggregation): a re-issued EVALUATE re-sends it. */
  private lastEvaluation: { key: string; vector: Uint32Array; event: PrivacyEventMsg } | null = null;
  /** The last two models received, by the coordinator's model id (the candidate evaluated, then trained from). */
  private readonly models: { id: string; values: Float32Array }[] = [];
  /** Updates this client trained and released (a declined round or a re-sent update is not one). */
  private releasesProduced = 0;
  /** Secure sums in progress, by run/round/collection: the protocol state and the vector to mask. */
  private readonly secureSums = new Map<string, { client: SecAggClient; vector: Uint32Array; header: ResultHeaderMsg }>();
  /**
   * Tasks this client refused or the coordinator refused, by run/round/kind/collection, with how often
   * they came back: a refused task is not handled again in a loop (see taskRefusedBefore).
   */
  private readonly refusedTasks = new Map<string, { times: number }>();
  /** Wakes the run loop from a pause (close/stop). */
  private wake: (() => void) | null = null;
  /** This institution's own metrics of the models it receives (null with localMetrics: false). */
  private readonly localView: LocalModelView | null;
  /** The answer to the run's cross-site evaluation (client-sdk/cross-site-release.ts). */
  private readonly crossSite: CrossSiteRelease;
  constructor(private readonly options: FederationClientOptions) {
    super();
    this.crossSite = new CrossSiteRelease(options.privacy);
    this.localView = options.localMetrics === false ? null : new LocalModelView(options.learner, (metrics) => {
      this.log(describeLocalMetrics(metrics));
      this.emit('local-metrics', metrics);
    });
    if (options.link) this.connection = options.link;
    else if (options.coordinator) this.connection = new CoordinatorConnection(options.coordinator, connectionCredentials(options), options.wireBytes);
    else throw new Error('coordinator: give the coordinator\'s address (or a link: a CoordinatorLink of your own transport)');
  }

  private log(line: string): void {
    this.options.log?.(`[${this.options.institutionId}] ${line}`);
  }

  close(): void {
    this.stopped = true;
    this.wake?.();
    this.ckksEncryptor?.encryptor.dispose();
    this.ckksEncryptor = null;
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
   * FAILED_PRECONDITION and is not retried.
   */
  async register(): Promise<void> {
    const { identity, institutionId, learner, budget, privacy, declaredExamples } = this.options;
    const schemaHash = schemaHashBytes(learner.schemaHash);
    const challenge = await this.connection.challenge({ institutionId });
    this.checkRunSchema(challenge.schemaJson);
    const anchor = challenge.receiptSeq > 0 ? privacy?.rowHashAt?.(challenge.receiptSeq) : undefined;
    const response = await this.connection.register(
      signedRegistration(challenge, {
        institutionId, identity, budget: budget ?? null, declaredExamples: declaredExamples ?? 0, schemaHash,
        ledgerHead: privacy?.signedHead?.() ?? null, anchorHash: anchor,
      }),
    );
    if (!Buffer.from(response.coordinatorPublicKey).equals(Buffer.from(challenge.coordinatorPublicKey))) {
      throw new Error('register: the coordinator answered the challenge and the registration with different keys');
    }
    this.coordinatorKey = new Uint8Array(response.coordinatorPublicKey);
    this.session = response.session;
    this.runId = response.runId;
    this.log(`registered with ${this.connection.address}, run ${this.runId}`);
    this.emit('registered', { runId: this.runId });
  }

  /**
   * Compares this institution's data schema with the run's (ChallengeResponse.schema_json) before it
   * registers: on a mismatch it refuses locally (SchemaMismatchError naming the differing columns), since
   * its rows would be preprocessed unlike everyone else's and the coordinator would refuse it anyway.
   */
  private checkRunSchema(schemaJson: string | undefined): void {
    if (!schemaJson) return;
    let runSchema;
    try {
      runSchema = parseSchema(JSON.parse(schemaJson), 'the run\'s data schema (ChallengeResponse.schema_json)');
    } catch (error) {
      throw new SchemaMismatchError(`register: ${(error as Error).message}`);
    }
    const { learner } = this.options;
    const own = learner.schema ?? null;
    if (own) {
      const mismatch = describeSchemaMismatch(runSchema, own);
      if (mismatch) throw new SchemaMismatchError(`register: this institution's data schema differs from the run's: ${mismatch} (compare with dpfed schema hash; preprocess with the run's schema)`);
      return;
    }
    const runHash = hashOfSchema(runSchema);
    if (!learner.schemaHash) throw new SchemaMismatchError(`register: the run uses a public data schema (schema hash ${runHash}) and this institution declares none: preprocess its data with that schema (dpfed client --schema FILE)`);
    if (learner.schemaHash.toLowerCase() !== runHash) throw new SchemaMismatchError(`register: this institution's schema hash ${learner.schemaHash} differs from the run's ${runHash} (compare with dpfed schema hash)`);
  }

  /** Keeps the coordinator's signed ledger head a task carries (once per head), when it verifies with the coordinator's key. */
  private keepCoordinatorHead(task: TaskMsg): void {
    const head = task.coordinatorLedgerHead;
    const keep = this.options.privacy?.keepCoordinatorReceipt;
    if (!head || !head.signature?.length || !keep || !this.coordinatorKey) return;
    const hash = Buffer.from(head.hash).toString('hex');
    if (this.lastCoordinatorHead === `${head.seq}:${hash}`) return;
    if (head.hash.length !== 32 || !verifySignature(this.coordinatorKey, receiptBytes(head.seq, head.hash), head.signature)) {
      this.log(`task ${task.kind}: the coordinator's ledger head does not verify with its key; not kept`);
      return;
    }
    try {
      keep.call(this.options.privacy, {
        ledgerKey: Buffer.from(this.coordinatorKey).toString('hex'), seq: head.seq, hash, signature: Buffer.from(head.signature).toString('hex'),
        subject: 'coordinator', receivedAt: new Date().toISOString(),
      });
      this.lastCoordinatorHead = `${head.seq}:${hash}`;
    } catch (error) {
      this.log(`task ${task.kind}: coordinator ledger receipt refused: ${(error as Error).message}`);
      this.emit('receipt-conflict', error);
    }
  }

  private envelope(round = 0, modelVersion = 0): Envelope {
    return { runId: this.runId, round, modelVersion, institutionId: this.options.institutionId, session: this.session };
  }

  /** Retries `fn` while the coordinator is unreachable or has forgotten our session (it restarted). */
  private async withReconnect<T>(fn: () => Promise<T>): Promise<T> {
    const giveUpAt = Date.now() + (this.options.reconnectForMs ?? DEFAULT_RECONNECT_FOR_MS);
    let delay: number = RECONNECT_BACKOFF.initialMs;
    let announced = false;
    for (;;) {
      try {
        return await fn();
      } catch (error) {
        if (this.stopped) throw error;
        const details = (error as FederationError).details ?? '';
        const forgotten = mustRegisterAgain(error);
        const unreachable = isUnreachable(error);
        if ((!forgotten && !unreachable) || Date.now() > giveUpAt) throw error;
        if (unreachable && !announced) {
          this.log(`coordinator ${this.connection.address} unreachable (${details || 'no details'}); retrying for up to ${Math.round((giveUpAt - Date.now()) / 1000)} s`);
          announced = true;
        }
        await this.sleep(jittered(delay));
        if (this.stopped) throw error;
        delay = Math.min(delay * 2, RECONNECT_BACKOFF.maxMs);
        try {
          await this.register();
        } catch (registerError) {
          // A refusal (e.g. ledger_head: this institution's ledger is behind the coordinator's receipt) is final.
          if (registerError instanceof SchemaMismatchError) throw registerError;
          if (isStatus(registerError, grpc.status.FAILED_PRECONDITION, grpc.status.PERMISSION_DENIED, grpc.status.INVALID_ARGUMENT)) throw registerError;
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
      this.keepCoordinatorHead(task);
      if (task.kind === 'DONE') {
        result.doneMessage = task.message;
        result.declined = this.declinedForBudget;
        result.roundsTrained = this.releasesProduced;
        if (this.localView) result.localMetrics = this.localView.all;
        this.log(`done: ${task.message}`);
        break;
      }
      if (task.kind === 'WAIT') {
        if (task.retryAfterMs > 0) await this.sleep(jittered(task.retryAfterMs));
        continue;
      }
      if (await this.taskRefusedBefore(task)) continue;
      try {
        await this.handle(task, result);
      } catch (error) {
        const gone = !this.stopped && (isUnreachable(error) || mustRegisterAgain(error));
        if (!gone && isStatus(error, grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION, grpc.status.PERMISSION_DENIED)) {
          this.log(`task ${task.kind} round ${task.envelope.round} refused by the coordinator: ${(error as FederationError).details}`);
          this.rememberRefused(task);
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

  private refusalKey(task: TaskMsg): string {
    return `${task.envelope.runId}/${task.envelope.round}/${task.kind}/${task.secagg?.collection ?? ''}`;
  }

  private rememberRefused(task: TaskMsg): void {
    const key = this.refusalKey(task);
    if (!this.refusedTasks.has(key)) this.refusedTasks.set(key, { times: 0 });
    // keep the memory small: the oldest entries go first
    while (this.refusedTasks.size > 256) this.refusedTasks.delete(this.refusedTasks.keys().next().value!);
  }

  /**
   * Whether `task` was refused before (by this client or by the coordinator), after pausing. A later step
   * of a secure sum or CKKS round (share keys, masked input, unmask, decrypt) is never handled again: it
   * cannot succeed in the same attempt, and the coordinator closes the phase without it. The first task of
   * an attempt (TRAIN, EVALUATE, CKKS_KEYGEN) comes back the same when a failed round is run again under
   * its number, so it is handled again, but only after a pause that doubles each time (1 s up to 30 s):
   * never a hot loop. Handling a new first task forgets the refused later steps of that round.
   */
  private async taskRefusedBefore(task: TaskMsg): Promise<boolean> {
    const key = this.refusalKey(task);
    if (STARTS_ATTEMPT.has(task.kind)) {
      const prefix = `${task.envelope.runId}/${task.envelope.round}/`;
      for (const k of [...this.refusedTasks.keys()]) if (k.startsWith(prefix) && !STARTS_ATTEMPT.has(k.slice(prefix.length).split('/')[0])) this.refusedTasks.delete(k);
    }
    const seen = this.refusedTasks.get(key);
    if (!seen) return false;
    seen.times++;
    this.emit('refused-again', { task, times: seen.times });
    await this.sleep(jittered(Math.min(REFUSED_BACKOFF.maxMs, REFUSED_BACKOFF.initialMs * 2 ** Math.min(seen.times - 1, 10))));
    return this.stopped || !STARTS_ATTEMPT.has(task.kind);
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
      this.keepAttachedModel(task, ctx.spec);
      switch (task.kind) {
        case 'TRAIN':
          await this.train(ctx, envelope, task.secagg ?? null, task.ckks && task.ckks.publicKey.length > 0 ? task.ckks : null);
          result.roundsTrained = this.releasesProduced;
          await this.observeLocally(ctx);
          return;
        case 'EVALUATE':
          await this.evaluate(ctx, envelope, task.secagg ?? null);
          result.roundsEvaluated++;
          await this.observeLocally(ctx);
          return;
        case 'CROSS_SITE_EVALUATE':
          await this.crossSiteEvaluate(ctx, envelope);
          return;
        case 'CKKS_KEYGEN':
          await this.ckksKeygen(envelope);
          return;
        case 'CKKS_DECRYPT':
          await this.ckksDecrypt(envelope, task);
          return;
        case 'SECAGG_SHARE_KEYS':
        case 'SECAGG_MASKED_INPUT':
        case 'SECAGG_UNMASK':
          await this.secureStep(task, envelope);
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
        this.rememberRefused(task);
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
    const held = ctx.modelId ? this.models.find((m) => m.id === ctx.modelId) : undefined;
    try {
      await this.localView.observe(ctx, held?.values);
    } catch (error) {
      this.log(`round ${ctx.round}: local metrics of the model not computed: ${(error as Error).message}`);
    }
  }

  private secureKey(runId: string, round: number, collection: string): string {
    return `${runId}/${round}/${collection}`;
  }

  /** Starts this institution's part of a secure sum: fresh keys, advertised; the vector waits for masking. */
  private async startSecureSum(envelope: Envelope, secagg: SecAggTaskMsg, vector: Uint32Array, header: ResultHeaderMsg): Promise<void> {
    if (vector.length !== secagg.vectorLength) throw new Error(`secure aggregation: vector length ${vector.length}, the coordinator expects ${secagg.vectorLength}`);
    const collection = secagg.collection as SecAggCollection;
    const client = new SecAggClient({
      identity: this.options.identity,
      institutionId: this.options.institutionId,
      index: secagg.index,
      context: { runId: envelope.runId, round: envelope.round, collection },
      threshold: secagg.threshold,
      identityKeys: new Map(secagg.identities.map((p) => [p.institutionId, new Uint8Array(p.identityPublicKey)] as const)),
      // recompute the masking graph from the key list and refuse neighbour lists that differ from it
      expectedGraph: secagg.graphNeighbours > 0 ? secagg.graphNeighbours : 'complete',
    });
    this.secureSums.set(this.secureKey(envelope.runId, envelope.round, collection), { client, vector, header: { ...header, masked: true, numExamples: 0, tensorCount: 1 } });
    exitAtTestPoint(`${collection}/advertise`, envelope.round);
    await this.connection.pushSecAgg({ envelope, collection, advertise: client.advertise() });
  }

  private async secureStep(task: TaskMsg, envelope: Envelope): Promise<void> {
    const secagg = task.secagg;
    if (!secagg) throw new Error(`${task.kind} task without its secure-aggregation part`);
    const key = this.secureKey(envelope.runId, envelope.round, secagg.collection);
    const state = this.secureSums.get(key);
    if (!state) throw new ProtocolRefusal(`no secure sum in progress for ${key}`);
    exitAtTestPoint(`${secagg.collection}/${task.kind === 'SECAGG_SHARE_KEYS' ? 'share-keys' : task.kind === 'SECAGG_MASKED_INPUT' ? 'masked-input' : 'unmask'}`, envelope.round);
    const refuse = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (error) {
        this.secureSums.delete(key);
        throw new ProtocolRefusal((error as Error).message);
      }
    };
    if (task.kind === 'SECAGG_SHARE_KEYS') {
      // A noisy evaluation's share of the noise was sized for the threshold it was given: a lower one would
      // let a sum of fewer shares (less noise than its ledger records) be revealed.
      if (secagg.collection === COLLECTIONS.evaluation && state.header.privacyEvent && secagg.threshold < state.client.threshold) {
        this.secureSums.delete(key);
        throw new ProtocolRefusal(`the threshold ${secagg.threshold} is below the ${state.client.threshold} this institution's noise share relies on`);
      }
      const shares = refuse(() => state.client.shareKeys(secagg.keys, secagg.neighbours, secagg.threshold));
      await this.connection.pushSecAgg({ envelope, collection: secagg.collection, shareKeys: { shares } });
    } else if (task.kind === 'SECAGG_MASKED_INPUT') {
      const masked = refuse(() => state.client.maskedInput(secagg.shares, state.vector));
      state.vector.fill(0);
      await this.connection.pushResult({ ...state.header, envelope }, [{ name: TENSOR_NAMES.secaggMasked, shape: [masked.length], dtype: 'UINT32', data: masked }]);
    } else {
      const body = refuse(() => state.client.unmask(secagg.survivors, secagg.dropped));
      this.secureSums.delete(key);
      await this.connection.pushSecAgg({ envelope, collection: secagg.collection, unmask: body });
    }
  }

  /**
   * The model a task refers to, as one flat vector (read-only: learners must not modify it). A model
   * already held under the task's model id is not downloaded again (a round's training model is the
   * previous round's evaluated candidate, which came attached to the EVALUATE task). A download in chunks
   * is received straight into one flat vector; a packed one is used where it arrived.
   */
  private async downloadFlat(envelope: Envelope, spec: ModelSpec, modelId: string): Promise<Float32Array> {
    const cached = modelId ? this.models.find((m) => m.id === modelId) : undefined;
    if (cached) return cached.values;
    const shapes = parameterShapes(spec);
    const count = parameterCount(spec);
    const offsets: number[] = [];
    shapes.reduce((offset, p) => (offsets.push(offset), offset + p.shape.reduce((a, b) => a * b, 1)), 0);
    let placed: Float32Array | null = null;
    const tensors = await this.connection.downloadModel(envelope, undefined, '', (index, dtype, byteLength) => {
      const size = shapes[index] ? shapes[index].shape.reduce((a, b) => a * b, 1) : -1;
      placed ??= new Float32Array(count);
      return dtype === 'FLOAT32' && byteLength === size * 4 ? placed.subarray(offsets[index], offsets[index] + size) : undefined;
    });
    return this.keepModel(modelId, spec, tensors, 'model download');
  }

  /** Keeps the model an EVALUATE task brought with it (Session stream), so the task needs no download. */
  private keepAttachedModel(task: TaskMsg, spec: ModelSpec): void {
    const attached = task.model;
    if (!attached || attached.packedData.length === 0 || !task.modelId || this.models.some((m) => m.id === task.modelId)) return;
    try {
      this.keepModel(task.modelId, spec, assembleWhole(attached.tensors, attached.packedData), 'model attached to the task');
    } catch (error) {
      this.log(`task ${task.kind} round ${task.envelope.round}: ${(error as Error).message}; downloading the model instead`);
    }
  }

  /** Checks a received model against the spec, as one flat vector (without a copy when its tensors lie one after another), and keeps it under `modelId`. */
  private keepModel(modelId: string, spec: ModelSpec, tensors: readonly NamedTensor[], what: string): Float32Array {
    const shapes = parameterShapes(spec);
    shapes.forEach(({ name, shape }, i) => {
      const t = tensors[i];
      const size = shape.reduce((a, b) => a * b, 1);
      if (!t || t.name !== name || t.dtype !== 'FLOAT32' || t.data.length !== size) throw new Error(`${what}: expected tensor "${name}" [${shape.join(',')}] at position ${i}`);
    });
    if (tensors.length !== shapes.length) throw new Error(`${what}: expected ${shapes.length} tensors, got ${tensors.length}`);
    const flat = flatFloat32(tensors.map((t) => t.data as Float32Array), parameterCount(spec));
    if (modelId) {
      this.models.unshift({ id: modelId, values: flat });
      this.models.length = Math.min(this.models.length, 2);
    }
    return flat;
  }

  private async train(ctx: TaskContext, envelope: Envelope, secagg: SecAggTaskMsg | null, ckks: CkksTaskMsg | null = null): Promise<void> {
    const key = `${ctx.runId}/${ctx.round}/${ctx.modelVersion}`;
    let release = this.lastRelease?.key === key ? this.lastRelease : null;
    if (release) {
      // A re-run of the same round (the coordinator restarted or the round was retried): send the update
      // already released instead of training again, so no privacy is spent twice.
      this.log(`round ${ctx.round}: re-sending the update already released for this round (no new privacy spend)`);
    } else {
      release = await this.produceRelease(ctx, envelope, key);
      if (!release) return;
      this.lastRelease = release;
      this.releasesProduced++;
    }
    const header: ResultHeaderMsg = { ...release.header, envelope };
    if (secagg) await this.sendSecureUpdate(ctx, envelope, secagg, release, header);
    else if (ckks) await this.sendEncryptedUpdate(ckks, release, header);
    else await this.connection.pushResult({ ...header, tensorCount: release.tensors.length }, release.tensors);
    this.emit('trained', { round: ctx.round, metrics: header.metrics });
  }

  /**
   * train → clip to the release policy's bound → the privacy event: the update as it leaves the
   * institution. Under client-level DP the institution first checks the plan against its own calibration
   * and budget, records the round in its own ledger, and flips its secret coin: heads, its clipped update
   * goes into the sum; tails, a zero (cover) update does, so nobody learns whether it took part (it trains
   * either way, so its timing does not tell either).
   */
  private async produceRelease(ctx: TaskContext, envelope: Envelope, key: string): Promise<Release | null> {
    const { config } = ctx;
    const refusal = releasePairRefusal(config.privacy.mode, config.aggregation);
    if (refusal) {
      await this.decline(envelope, 'unsupported', refusal);
      return null;
    }
    const absent = this.options.sitsOut?.(ctx);
    if (absent) {
      await this.decline(envelope, 'unavailable', absent);
      return null;
    }
    const policy = trainingReleasePolicy(config);
    let noiseMultiplier: number | null = null;
    let joins = true;
    let clientLedgerHead: LedgerHeadMsg | null = null;
    if (policy.participation === 'secret-coin') {
      const privacy = this.options.privacy;
      if (!privacy?.beforeClientRound || !privacy.recordClientRelease) throw new Error('client-level DP requested but this client has no privacy guard configured');
      const decision = privacy.beforeClientRound(ctx);
      if (!decision.allowed) {
        await this.decline(envelope, decision.reason ?? 'budget', decision.detail, decision.projectedEpsilon, decision.budgetEpsilon);
        return null;
      }
      try {
        // The binding budget check: the round's event enters the institution's ledger (or not) in one transaction.
        privacy.recordClientRelease(ctx);
      } catch (error) {
        if (!(error instanceof BudgetExceededError)) throw error;
        await this.decline(envelope, 'budget', error.message, error.projectedEpsilon, error.budget.epsilon);
        return null;
      }
      clientLedgerHead = privacy.signedHead?.() ?? null;
      joins = participationCoin(config.privacy.client!.clientSampleRate);
      // for the institution's own code only: nothing about the coin leaves it
      this.emit('participation', { round: ctx.round, joined: joins });
    }
    if (policy.noise === 'local-dp-sgd') {
      if (!this.options.privacy) throw new Error('record-level DP requested but this client has no privacy guard configured');
      const decision = this.options.privacy.beforeRound(ctx, this.options.learner);
      if (!decision.allowed) {
        await this.decline(envelope, decision.reason ?? 'budget', decision.detail, decision.projectedEpsilon, decision.budgetEpsilon);
        return null;
      }
      noiseMultiplier = decision.noiseMultiplier;
    }
    const global = await this.downloadFlat(envelope, ctx.spec, ctx.modelId ?? '');
    const t0 = performance.now();
    const outcome = await this.options.learner.train(global, ctx, noiseMultiplier);
    exitAtTestPoint('train', ctx.round);
    const delta = subtractGlobal(outcome.params, global);
    if (joins) clipToNorm(delta, policy.updateBound);
    else delta.fill(0);
    let privacyEvent: PrivacyEventMsg | null = null;
    // The head of the institution's own ledger after it recorded this round (record or client level): a receipt for the coordinator.
    let ledgerHead: LedgerHeadMsg | null = clientLedgerHead;
    if (policy.noise === 'local-dp-sgd') {
      if (!outcome.mechanism) throw new Error('record-level DP: the learner did not report the mechanism it ran');
      try {
        // The binding budget check: the event enters the institution's ledger (or not) before any byte leaves.
        privacyEvent = this.options.privacy!.recordRelease(ctx, outcome.mechanism);
      } catch (error) {
        if (!(error instanceof BudgetExceededError)) throw error;
        await this.decline(envelope, 'budget', error.message, error.projectedEpsilon, error.budget.epsilon);
        return null;
      }
      ledgerHead = this.options.privacy!.signedHead?.() ?? null;
    }
    // In record mode the training loss is computed on raw records without noise: it stays home.
    const metrics: Record<string, number> = policy.noise === 'none' ? { ...outcome.metrics } : { steps: outcome.metrics.steps ?? 0 };
    const tensors: NamedTensor[] = [];
    let offset = 0;
    for (const { name, shape } of parameterShapes(ctx.spec)) {
      const size = shape.reduce((a, b) => a * b, 1);
      tensors.push({ name, shape, dtype: 'FLOAT32', data: delta.subarray(offset, offset + size) });
      offset += size;
    }
    return {
      key,
      delta,
      weight: policy.weightOf(this.options.declaredExamples ?? null),
      noiseShareStd: policy.noiseShareStd.bind(policy),
      tensors,
      header: {
        envelope,
        kind: 'TRAIN_RESULT',
        numExamples: 0,
        metrics: { ...metrics, seconds: (performance.now() - t0) / 1000 },
        privacyEvent: privacyEvent ?? undefined,
        ledgerHead: ledgerHead ?? undefined,
        tensorCount: tensors.length,
        masked: false,
        encrypted: false,
      },
    };
  }

  private async decline(envelope: Envelope, reason: string, detail: string, projectedEpsilon = 0, budgetEpsilon = 0): Promise<void> {
    this.log(`round ${envelope.round}: declining (${reason}): ${detail}`);
    await this.connection.decline({ envelope, reason, projectedEpsilon, budgetEpsilon, detail });
    this.emit('declined', { round: envelope.round, reason, detail, projectedEpsilon, budgetEpsilon });
    if (reason === 'budget') this.declinedForBudget = detail;
  }

  // ---- CKKS: encrypt under the federation key; the key holder decrypts only each round's sum ----

  private async sendEncryptedUpdate(ckks: CkksTaskMsg, release: Release, header: ResultHeaderMsg): Promise<void> {
    const envelope = header.envelope;
    // Distributed DP: the institution's own noise share for the offered institutions, added before encryption;
    // a noisy release is encrypted once (a second sum with the same noise could be differenced).
    const share = release.noiseShareStd(Math.max(1, ckks.offered ?? 0));
    if (share > 0) {
      if (!(ckks.offered && ckks.offered >= 1)) {
        await this.decline(envelope, 'noise', `round ${envelope.round}: the CKKS task does not say how many institutions were offered the round, so this institution cannot size its noise share`);
        return;
      }
      if (release.encoded?.noisy) {
        await this.decline(envelope, 'already-released', `round ${envelope.round}: this round's noisy update was already encrypted into a sum`);
        return;
      }
    }
    const update = share > 0 ? Float32Array.from(release.delta) : release.delta;
    if (share > 0) {
      addGaussianNoise(update, share);
      release.encoded = { fingerprint: 'ckks', vector: new Uint32Array(0), noisy: true };
      this.emit('released', { round: envelope.round, digest: createHash('sha256').update(update).digest('hex') });
    }
    const values = ckksUpdateVector(update, release.weight, ckks.weightCap, CKKS_UPDATE_CLIP_RANGE);
    if (values.length !== ckks.vectorLength) throw new Error(`ckks: update length ${values.length}, the coordinator expects ${ckks.vectorLength}`);
    const keyHex = Buffer.from(ckks.publicKey).toString('hex');
    if (this.ckksEncryptor?.keyHex !== keyHex) {
      this.ckksEncryptor?.encryptor.dispose();
      this.ckksEncryptor = { keyHex, encryptor: await CkksEncryptor.create(ckks.publicKey) };
    }
    const ciphertexts = this.ckksEncryptor.encryptor.encrypt(values);
    values.fill(0);
    const tensors: NamedTensor[] = ciphertexts.map((c, i) => ({ name: `ckks/${i}`, shape: [c.length], dtype: 'BYTES', data: c }));
    await this.connection.pushResult({ ...header, numExamples: 0, metrics: { seconds: header.metrics.seconds ?? 0 }, encrypted: true, tensorCount: tensors.length }, tensors);
  }

  private async ckksKeygen(envelope: Envelope): Promise<void> {
    const keys = await createFederationKeys();
    this.ckksSecrets.set(envelope.runId, keys.secretKey);
    const signature = this.options.identity.sign(ckksKeyBinding(envelope.runId, this.options.institutionId, keys.publicKey));
    this.log(`CKKS: generated the federation key pair for run ${envelope.runId}; the secret key stays here`);
    await this.connection.pushSecAgg({ envelope, collection: COLLECTIONS.update, ckksPublicKey: { key: keys.publicKey, signature } });
  }

  private async ckksDecrypt(envelope: Envelope, task: TaskMsg): Promise<void> {
    const round = `${envelope.runId}/${envelope.round}`;
    const secret = this.ckksSecrets.get(envelope.runId);
    const summands = task.ckks?.summands ?? 0;
    if (!secret) throw new ProtocolRefusal(`CKKS decryption requested for run ${envelope.runId}, whose secret key this institution does not hold`);
    if (this.ckksDecrypted.has(round)) throw new ProtocolRefusal(`CKKS decryption requested twice in round ${envelope.round}: refused (it could reveal a single update)`);
    if (summands < 2) throw new ProtocolRefusal(`CKKS decryption of a "sum" of ${summands} update(s) refused: it would reveal a single institution's update`);
    this.ckksDecrypted.add(round);
    const tensors = await this.connection.downloadModel(envelope, undefined, CKKS_SUM_ARTIFACT);
    const decryptor = await CkksDecryptor.create(secret);
    try {
      const length = task.ckks!.vectorLength;
      const sum = decryptor.decryptSum(tensors.map((t) => t.data as Uint8Array), length);
      await this.connection.pushResult(
        { envelope, kind: 'CKKS_DECRYPTED_SUM', numExamples: 0, metrics: { summands }, privacyEvent: undefined, tensorCount: 1, masked: false, encrypted: false },
        [{ name: TENSOR_NAMES.ckksSum, shape: [length], dtype: 'FLOAT64', data: sum }],
      );
    } finally {
      decryptor.dispose();
    }
  }

  /** quantise (+ the distributed-DP noise share) → the secure sum. Re-quantising a released update is post-processing; re-drawing its noise is not, so a noisy encoding is reused or the round declined. */
  private async sendSecureUpdate(ctx: TaskContext, envelope: Envelope, secagg: SecAggTaskMsg, release: Release, header: ResultHeaderMsg): Promise<void> {
    const fingerprint = `${JSON.stringify(secagg.quantisation)}|${secagg.clientNoiseSigma}|${release.weight}`;
    // A noisy vector enters one sum only: a second secure sum of the same release is refused (the next
    // round draws fresh noise and records it as its own event).
    if (release.encoded?.noisy) {
      await this.decline(envelope, 'already-released', `round ${ctx.round}: this round's noisy update already entered a secure sum; sending it again would let two sums be differenced`);
      return;
    }
    if (!release.encoded || release.encoded.fingerprint !== fingerprint) {
      const quantisation = quantisationFromMessage(secagg.quantisation);
      // Distributed DP: the institution's own share for the offered participants, never less.
      const ownShare = release.noiseShareStd(secagg.identities.length) * quantisation.scale;
      if (ownShare > 0 && !(secagg.clientNoiseSigma >= ownShare * (1 - 1e-9))) {
        await this.decline(envelope, 'noise', `round ${ctx.round}: the coordinator asks for noise ${secagg.clientNoiseSigma} per institution, below this institution's own share ${ownShare} (quantised units)`);
        return;
      }
      // with privacy off the rounding protects nothing: it is seeded, so a seeded run is reproducible
      const rounding = ctx.config.privacy.mode === 'off' ? seededRounding(`${ctx.config.seed}:rounding:${ctx.round}:${this.options.institutionId}`) : undefined;
      const vector = encodeWeightedUpdate(release.delta, release.weight, quantisation, rounding);
      if (ownShare > 0) addDistributedNoise(vector.subarray(0, release.delta.length), secagg.clientNoiseSigma);
      release.encoded = { fingerprint, vector, noisy: ownShare > 0 };
      this.emit('released', { round: ctx.round, digest: createHash('sha256').update(vector).digest('hex') });
    }
    await this.startSecureSum(envelope, secagg, new Uint32Array(release.encoded.vector), { ...header, metrics: { seconds: header.metrics.seconds ?? 0 } });
  }

  private async evaluate(ctx: TaskContext, envelope: Envelope, secagg: SecAggTaskMsg | null): Promise<void> {
    if (ctx.config.privacy.mode !== 'off' && !ctx.config.evaluation.private) {
      // The data holder's own rule: under a privacy mode, validation figures leave only through a
      // mechanism. Exact evaluation is one only with privacy off; under client-level DP none is built.
      await this.decline(envelope, 'privacy', `round ${ctx.round}: exact evaluation under privacy ${ctx.config.privacy.mode} would release validation figures without noise; refused`);
      return;
    }
    const model = await this.downloadFlat(envelope, ctx.spec, ctx.modelId ?? '');
    const outcome = await this.options.learner.evaluate(model, ctx);
    exitAtTestPoint('evaluate', ctx.round);
    if (this.localView) this.localView.keepScores(ctx.modelId, outcome.validation);
    else this.logLocalEvaluation(ctx, outcome);
    if (ctx.config.evaluation.private) {
      await this.evaluatePrivately(ctx, envelope, secagg, outcome);
      return;
    }
    // Exact evaluation (privacy off): the figures leave as they are; no privacy is claimed in this mode.
    if (secagg) {
      const vector = encodeEvaluation(outcome.histogram, outcome.loss, outcome.accuracy, outcome.numExamples);
      await this.startSecureSum(envelope, secagg, vector, {
        envelope, kind: 'EVALUATE_RESULT', numExamples: 0, metrics: {}, privacyEvent: undefined, tensorCount: 1, masked: true, encrypted: false,
      });
      this.emit('evaluated', { round: ctx.round, loss: outcome.loss, accuracy: outcome.accuracy });
      return;
    }
    const vector = histogramToVector(outcome.histogram);
    const bins = outcome.histogram.bins;
    await this.connection.pushResult(
      {
        envelope,
        kind: 'EVALUATE_RESULT',
        numExamples: outcome.numExamples,
        metrics: { loss: outcome.loss, accuracy: outcome.accuracy },
        privacyEvent: undefined,
        tensorCount: 2,
        masked: false,
        encrypted: false,
      },
      [
        { name: TENSOR_NAMES.histogramPositive, shape: [bins], dtype: 'UINT32', data: vector.subarray(0, bins) },
        { name: TENSOR_NAMES.histogramNegative, shape: [bins], dtype: 'UINT32', data: vector.subarray(bins, 2 * bins) },
      ],
    );
    this.emit('evaluated', { round: ctx.round, loss: outcome.loss, accuracy: outcome.accuracy });
  }

  /** The run's cross-site evaluation: this institution's own histograms of the final model, or a decline saying why. */
  private async crossSiteEvaluate(ctx: TaskContext, envelope: Envelope): Promise<void> {
    const answer = await this.crossSite.answer(ctx, async () => this.options.learner.evaluate(await this.downloadFlat(envelope, ctx.spec, ctx.modelId ?? ''), ctx));
    if ('decline' in answer) {
      const { reason, detail, projectedEpsilon, budgetEpsilon } = answer.decline;
      await this.decline(envelope, reason, detail, projectedEpsilon, budgetEpsilon);
      return;
    }
    const { header, tensors, sigma } = answer.result;
    await this.connection.pushResult({ ...header, envelope }, tensors);
    this.log(`cross-site evaluation of the final model (round ${ctx.round}) sent: ${sigma > 0 ? `this institution's own histograms with noise ${sigma.toFixed(3)} per cell, recorded in its ledger` : 'exact histograms (privacy off)'}`);
    this.emit('cross-site-evaluated', { round: ctx.round, sigma });
  }

  /** The institution's own exact validation figures, to its own log only (never sent). */
  private logLocalEvaluation(ctx: TaskContext, outcome: EvalOutcome): void {
    const auc = outcome.auc ?? aucFromHistogram(outcome.histogram);
    this.log(`round ${ctx.round}: local validation (stays here): AUC ${auc.toFixed(4)}, loss ${outcome.loss.toFixed(4)}, accuracy ${outcome.accuracy.toFixed(4)}`);
  }

  /**
   * Private evaluation: only the two class histograms leave, with discrete-Gaussian noise of at least
   * what this institution's own plan requires (privacy/evaluation-mechanism.ts); the event is in its own
   * ledger before the vector leaves. A re-issued task for the same candidate re-sends the same noisy
   * vector (no new spend); another release for the round is declined.
   */
  private async evaluatePrivately(ctx: TaskContext, envelope: Envelope, secagg: SecAggTaskMsg | null, outcome: EvalOutcome): Promise<void> {
    const privacy = this.options.privacy;
    if (!privacy?.beforeEvaluation || !privacy.recordEvaluation) throw new Error('private evaluation requested but this client has no privacy guard that records evaluations');
    const bins = ctx.config.evaluation.bins;
    if (outcome.histogram.bins !== bins) throw new Error(`private evaluation: the learner returned ${outcome.histogram.bins} bins, the task asks for ${bins}`);
    const key = `${ctx.runId}/${ctx.round}/${ctx.modelId ?? ''}/${secagg ? `secagg:${secagg.threshold}` : 'plain'}`;
    let release = this.lastEvaluation?.key === key ? this.lastEvaluation : null;
    if (release) {
      this.log(`round ${ctx.round}: re-sending the evaluation already released for this candidate (no new privacy spend)`);
    } else {
      const requested = secagg ? secagg.clientNoiseSigma : ctx.config.evaluation.private!.noiseSigma;
      const decision = privacy.beforeEvaluation(ctx, { requested, secure: secagg ? { threshold: secagg.threshold } : undefined });
      if (!decision.allowed || !decision.noise) {
        await this.decline(envelope, decision.reason ?? 'budget', decision.detail, decision.projectedEpsilon, decision.budgetEpsilon);
        return;
      }
      if (decision.noise.overridden) this.log(`round ${ctx.round}: evaluation: ${decision.noise.overridden}`);
      const vector = noisyHistogramVector(outcome.histogram, decision.noise.sigma);
      const event = privacy.recordEvaluation(ctx, decision.noise);
      release = { key, vector, event };
      this.lastEvaluation = release;
      this.log(`round ${ctx.round}: evaluation released with noise ${decision.noise.sigma.toFixed(3)} per cell${secagg ? ` (a share; ${secagg.threshold} shares relied upon)` : ''}, recorded noise multiplier ${decision.noise.recordedMultiplier.toFixed(3)}`);
    }
    // the signed ledger head after the evaluation event, so the coordinator's receipt of this ledger stays current
    const header: ResultHeaderMsg = {
      envelope, kind: 'EVALUATE_RESULT', numExamples: 0, metrics: {}, privacyEvent: release.event, tensorCount: secagg ? 1 : 2, masked: Boolean(secagg), encrypted: false,
      ledgerHead: privacy.signedHead?.(),
    };
    if (secagg) {
      await this.startSecureSum(envelope, secagg, new Uint32Array(release.vector), header);
    } else {
      await this.connection.pushResult(header, [
        { name: TENSOR_NAMES.histogramPositive, shape: [bins], dtype: 'UINT32', data: release.vector.subarray(0, bins) },
        { name: TENSOR_NAMES.histogramNegative, shape: [bins], dtype: 'UINT32', data: release.vector.subarray(bins, 2 * bins) },
      ]);
    }
    this.emit('evaluated', { round: ctx.round, loss: outcome.loss, accuracy: outcome.accuracy, private: true });
  }
}

/** An update as it left (or is about to leave) the institution, kept so a re-run round re-sends it. */
interface Release {
  key: string;
  delta: Float32Array;
  weight: number;
  /** The release policy's noise share per institution for `offered` institutions (update units; 0 without distributed noise). */
  noiseShareStd: (offered: number) => number;
  tensors: NamedTensor[];
  header: ResultHeaderMsg;
  encoded?: { fingerprint: string; vector: Uint32Array; noisy: boolean };
}

/** The institution refuses a secure-aggregation or CKKS step that could leak its input. */
class ProtocolRefusal extends Error {}

/** This institution's data schema is not the run's: it refused to register (never retried). */
export class SchemaMismatchError extends Error {}

/** A learner's schema hash (hex SHA-256, proto/data-schema.ts schemaHash) as the bytes RegisterRequest.schema_hash carries; empty when none. */
function schemaHashBytes(hash: string | null | undefined): Uint8Array {
  if (!hash) return new Uint8Array(0);
  if (!/^[0-9a-fA-F]{64}$/.test(hash)) throw new Error(`learner.schemaHash: expected a SHA-256 as 64 hex characters, got "${hash}"`);
  return new Uint8Array(Buffer.from(hash, 'hex'));
}

/** Uniform draws for the stochastic rounding of a run with privacy off, from a seeded generator. */
function seededRounding(seed: string): (uniforms: Uint32Array) => void {
  const random = new SeededRandom(seed);
  return (uniforms) => {
    for (let i = 0; i < uniforms.length; i++) uniforms[i] = random.nextUint32();
  };
}
