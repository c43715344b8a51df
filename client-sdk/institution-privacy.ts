// DP bookkeeping at the data holder: the institution's own ε ledger (a local SQLite file it countersigns
// itself), its own budget, the noise multiplier calibrated to the run's target, and the refusal to train
// when the projected ε after a round would exceed the budget (an early refusal; the binding check runs when
// the update is released: the event is appended only if it fits the budget, in the same SQLite transaction
// as the check, so two processes sharing the ledger file cannot overspend together). Record level: its DP-SGD events (at the
// plan's public sampling rate and local steps) and its private evaluations. Client level: one event per
// round it is offered (a subsampled Gaussian release whether its coin joined it to the sum or it sent a
// cover update), and its own z, below which it refuses to add noise.
//
// Private evaluation (privacy/evaluation-mechanism.ts), record level only: the run's target covers
// training and evaluation. The institution plans its own evaluation noise from the run's evaluation share
// (scaled down when its own budget is below the run's target) over the planned evaluations, calibrates its
// training noise so that training and evaluation events compose to at most min(target, own budget), never
// adds less evaluation noise than that plan requires, records each evaluation in its ledger before the
// released vector leaves, and declines an evaluation that would pass its budget. A run with cross-site
// evaluation plans one more evaluation release (the institution's own noisy histograms of the final
// model, released alone, recorded as a "cross-site" event): the same share covers it, so an institution
// that follows its plan can afford it; one whose ledger holds other runs' events may not, and declines it
// saying why.
// Client level has no evaluation at the institutions: the histograms' sensitivity is one validation row,
// while a client-level ledger accounts whole institutions, and no client-level evaluation mechanism is
// built; the run evaluates on coordinator-held data (--evaluation-data) or not at all, and the client
// refuses an exact evaluation task under any privacy mode (evaluation-release.ts).
//
// The institution's ledger head, signed with its identity key, is its receipt for the coordinator; the
// coordinator's signed heads are kept in the ledger file's `ledger_receipts` table (privacy/receipts.ts).
import { reusePreparedStatements } from '@dpfed/privacy/prepared-statements';
import Database from 'better-sqlite3';
import { makeAccountant, type Accountant } from '@dpfed/privacy/accountant';
import { checkBudget, type PrivacyBudget } from '@dpfed/privacy/budget';
import {
  EVALUATION_SENSITIVITY,
  evaluationMechanism,
  planEvaluationNoise,
  planInstitutionEvaluations,
  planInstitutionNoise,
  type EvaluationNoisePlan,
  type InstitutionNoisePlan,
} from '@dpfed/privacy/evaluation-mechanism';
import { calibrateClientNoise } from '@dpfed/privacy/release-policy';
import { noiseMultiplierCovering, samplerTailMassPerDraw, tailDelta } from '@dpfed/privacy/discretisation-cost';
import type { IdentityKey } from '@dpfed/privacy/identity';
import { signEvent, type LedgerEvent } from '@dpfed/privacy/ledger-event';
import { PrivacyLedger, type SpentEpsilon } from '@dpfed/privacy/ledger';
import type { MechanismEvent } from '@dpfed/privacy/mechanism-event';
import { ReceiptStore, type LedgerReceipt } from '@dpfed/privacy/receipts';
import type { LedgerHeadMsg, PrivacyEventMsg } from '@dpfed/proto/wire';
import type { ClientPrivacy, EvaluationDecision, RoundDecision } from './client-privacy.ts';
import type { Learner, MechanismReport, PlannedMechanism, TaskContext } from './learner.ts';

export interface InstitutionPrivacyOptions {
  institutionId: string;
  identity: IdentityKey;
  budget: PrivacyBudget;
  ledgerPath: string;
}

export class InstitutionPrivacy implements ClientPrivacy {
  private readonly db: Database.Database;
  private readonly ledger: PrivacyLedger;
  private readonly receipts: ReceiptStore;
  private readonly plans = new Map<string, InstitutionNoisePlan>();
  private readonly evaluationPlans = new Map<string, { count: number; multiplier: number }>();
  /** Client level: this institution's own z per run plan. */
  private readonly calibrated = new Map<string, number>();

  constructor(private readonly options: InstitutionPrivacyOptions) {
    this.db = reusePreparedStatements(new Database(options.ledgerPath));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 10000');
    this.ledger = new PrivacyLedger(this.db, { countersigner: options.identity });
    this.receipts = new ReceiptStore(this.db);
    this.ledger.registerInstitution(options.institutionId, options.identity.publicKey, options.budget);
  }

  close(): void {
    this.db.close();
  }

  private accountant(task: TaskContext): Accountant {
    return makeAccountant(task.config.privacy.record?.accountant ?? 'rdp');
  }

  private spentEvents(): MechanismEvent[] {
    return this.ledger.events({ institutionId: this.options.institutionId }).map((row) => row.event);
  }

  /**
   * σ for this run: calibrated once so the run's planned rounds, together with its planned private
   * evaluations, compose to min(run target, own budget).
   */
  private noiseMultiplierFor(task: TaskContext, planned: { sampleRate: number; steps: number }): number {
    return this.noisePlan(task, planned).trainingMultiplier;
  }

  /** The run's plan (privacy/evaluation-mechanism.ts planInstitutionNoise), computed once per run and mechanism. */
  private noisePlan(task: TaskContext, planned: { sampleRate: number; steps: number }): InstitutionNoisePlan {
    const record = task.config.privacy.record!;
    const share = task.config.evaluation.private;
    const every = task.config.evaluation.every ?? 1;
    const crossSite = Boolean(task.config.evaluation.crossSite);
    const key = `${task.runId}:${planned.sampleRate}:${planned.steps}:${record.plannedRounds}:${record.targetEpsilon}:${share ? `${share.epsilon}/${every}/${crossSite}` : 'exact'}`;
    let plan = this.plans.get(key);
    if (!plan) {
      plan = planInstitutionNoise({
        targetEpsilon: record.targetEpsilon,
        budget: this.options.budget,
        accountant: record.accountant,
        training: { ...planned, rounds: record.plannedRounds },
        evaluation: share ? { epsilon: share.epsilon, every, crossSite } : null,
      });
      this.plans.set(key, plan);
    }
    return plan;
  }

  /**
   * This institution's own evaluation plan for the run (null without private evaluation): the planned
   * evaluations and the noise multiplier each needs (the training part of the plan does not change it).
   */
  private evaluationPlan(task: TaskContext): { count: number; multiplier: number } | null {
    const share = task.config.evaluation.private;
    const record = task.config.privacy.record;
    if (!share || !record) return null;
    const every = task.config.evaluation.every ?? 1;
    const crossSite = Boolean(task.config.evaluation.crossSite);
    const key = `${task.runId}:${record.plannedRounds}:${record.targetEpsilon}:${share.epsilon}/${every}/${crossSite}`;
    let plan = this.evaluationPlans.get(key);
    if (!plan) {
      plan = planInstitutionEvaluations({
        targetEpsilon: record.targetEpsilon,
        budget: this.options.budget,
        accountant: record.accountant,
        rounds: record.plannedRounds,
        epsilon: share.epsilon,
        every,
        crossSite,
      });
      this.evaluationPlans.set(key, plan);
    }
    return plan;
  }

  /**
   * Before a private evaluation leaves: the noise to add (never less than this institution's own plan
   * requires, whatever the task asks for), refused when the round's candidate was already evaluated
   * (a second release would spend twice) or when the event would pass the budget. `crossSite`: the
   * run's cross-site release of the final model (once per run, mode "cross-site"); refused when the run
   * did not plan one.
   */
  beforeEvaluation(task: TaskContext, o: { requested: number; secure?: { threshold: number }; crossSite?: boolean }): EvaluationDecision {
    const budgetEpsilon = this.options.budget.epsilon;
    const what = o.crossSite ? 'cross-site evaluation' : 'evaluation';
    let plan: { count: number; multiplier: number } | null;
    try {
      plan = this.evaluationPlan(task);
    } catch (error) {
      return {
        allowed: false,
        reason: 'budget',
        projectedEpsilon: this.spent().epsilon,
        budgetEpsilon,
        detail: `${what}: no evaluation noise fits this institution's budget: ${(error as Error).message}`,
      };
    }
    if (!plan) throw new Error('private evaluation: the task carries no evaluation.private settings in record mode');
    if (o.crossSite && !task.config.evaluation.crossSite) {
      return {
        allowed: false,
        reason: 'unplanned',
        projectedEpsilon: this.spent().epsilon,
        budgetEpsilon,
        detail: `cross-site evaluation: run ${task.runId} did not plan one (evaluation.crossSite is not set), so its epsilon is not in this institution's plan; refused`,
      };
    }
    const mode = o.crossSite ? 'cross-site' : 'evaluation';
    const already = this.ledger.events({ institutionId: this.options.institutionId, runId: task.runId }).find((r) => r.event.mode === mode && (o.crossSite || r.event.round === task.round));
    if (already) {
      return {
        allowed: false,
        reason: 'already-released',
        projectedEpsilon: this.spent().epsilon,
        budgetEpsilon,
        detail: o.crossSite
          ? `the cross-site evaluation of run ${task.runId} was already released (ledger row ${already.seq}); releasing again would spend privacy twice`
          : `the candidate of round ${task.round} of run ${task.runId} was already evaluated (ledger row ${already.seq}); releasing again would spend privacy twice`,
      };
    }
    const noise = planEvaluationNoise({ required: plan.multiplier, requested: o.requested, bins: task.config.evaluation.bins, secure: o.secure });
    const check = checkBudget(this.spentEvents(), [evaluationMechanism(noise.recordedMultiplier * EVALUATION_SENSITIVITY, 1)], this.options.budget, this.accountant(task));
    return {
      allowed: check.allowed,
      reason: check.allowed ? undefined : 'budget',
      noise,
      projectedEpsilon: check.projectedEpsilon,
      budgetEpsilon,
      detail: check.allowed ? `${what}: projected epsilon ${check.projectedEpsilon.toFixed(4)} within budget ${budgetEpsilon}` : `${what}: ${check.reason ?? 'over budget'}`,
    };
  }

  /**
   * Appends the evaluation event (Gaussian mechanism, sample rate 1, one step) to the ledger and signs it,
   * as mode "cross-site" for the run's cross-site release; call before the vector leaves.
   */
  recordEvaluation(task: TaskContext, noise: EvaluationNoisePlan, o: { crossSite?: boolean } = {}): PrivacyEventMsg {
    return this.appendRelease(
      task,
      {
        mode: o.crossSite ? 'cross-site' : 'evaluation',
        sampleRate: 1,
        noiseMultiplier: noise.recordedMultiplier,
        steps: 1,
        clipNorm: EVALUATION_SENSITIVITY,
        // the cells' noise comes from the same cut-tail sampler as training noise: its missing mass is charged
        delta: this.chargedDelta({ samplerTailMass: 2 * task.config.evaluation.bins * samplerTailMassPerDraw(noise.sigma) }),
      },
      this.accountant(task),
    );
  }

  /** The sigma to add noise at so that the charged sigma is at least the calibrated one (when the learner says its dimension). */
  private noiseToAdd(task: TaskContext, planned: PlannedMechanism, sigma: number): number {
    const clipNorm = task.config.privacy.record?.clipNorm;
    if (planned.dimension === undefined || clipNorm === undefined) return sigma;
    return noiseMultiplierCovering(sigma, clipNorm, planned.dimension);
  }

  beforeRound(task: TaskContext, learner: Learner): RoundDecision {
    const budgetEpsilon = this.options.budget.epsilon;
    const already = this.ledger.events({ institutionId: this.options.institutionId, runId: task.runId }).find((r) => r.event.round === task.round && r.event.mode === 'record');
    if (already) {
      return {
        allowed: false,
        reason: 'already-released',
        noiseMultiplier: 0,
        projectedEpsilon: this.spent().epsilon,
        budgetEpsilon,
        detail: `round ${task.round} of run ${task.runId} was already released (ledger row ${already.seq}); training again would spend privacy twice`,
      };
    }
    const planned = learner.plannedMechanism?.(task);
    if (!planned) throw new Error('record-level DP: the learner cannot say which mechanism a round runs');
    const sigma = this.noiseMultiplierFor(task, planned);
    // The budget is checked at the calibrated sigma; the noise is added at a sigma whose charged figure (the
    // one recorded, after the snapping grid's charge) is at least that.
    const check = checkBudget(this.spentEvents(), [{ sampleRate: planned.sampleRate, steps: planned.steps, noiseMultiplier: sigma }], this.options.budget, this.accountant(task));
    return {
      allowed: check.allowed,
      reason: check.allowed ? undefined : 'budget',
      noiseMultiplier: this.noiseToAdd(task, planned, sigma),
      projectedEpsilon: check.projectedEpsilon,
      budgetEpsilon,
      detail: check.allowed ? `projected epsilon ${check.projectedEpsilon.toFixed(4)} within budget ${budgetEpsilon}` : (check.reason ?? 'over budget'),
    };
  }

  prepare(task: TaskContext, learner: Learner): number | null {
    if (task.config.privacy.mode === 'client') this.clientNoiseMultiplier(task);
    const planned = task.config.privacy.mode === 'record' ? learner.plannedMechanism?.(task) : null;
    return planned ? this.noiseToAdd(task, planned, this.noiseMultiplierFor(task, planned)) : null;
  }

  /** Client level: the z this institution calibrates itself from the plan and its own budget (the smaller ε, the smaller δ). */
  clientNoiseMultiplier(task: TaskContext): number {
    const c = task.config.privacy.client!;
    const key = `client:${task.runId}:${c.clientSampleRate}:${c.plannedRounds}:${c.targetEpsilon}:${c.delta}`;
    let z = this.calibrated.get(key);
    if (z === undefined) {
      z = calibrateClientNoise({
        targetEpsilon: Math.min(c.targetEpsilon, this.options.budget.epsilon),
        delta: Math.min(c.delta, this.options.budget.delta),
        clientSampleRate: c.clientSampleRate,
        plannedRounds: c.plannedRounds,
        accountant: c.accountant,
      });
      this.calibrated.set(key, z);
    }
    return z;
  }

  beforeClientRound(task: TaskContext): RoundDecision {
    const budgetEpsilon = this.options.budget.epsilon;
    const c = task.config.privacy.client!;
    const own = this.clientNoiseMultiplier(task);
    const already = this.ledger.events({ institutionId: this.options.institutionId, runId: task.runId }).find((r) => r.event.round === task.round && r.event.mode === 'client');
    if (already) {
      return {
        allowed: false,
        reason: 'already-released',
        noiseMultiplier: own,
        projectedEpsilon: this.spent().epsilon,
        budgetEpsilon,
        detail: `round ${task.round} of run ${task.runId} was already released (ledger row ${already.seq}); a second noisy update would spend privacy twice`,
      };
    }
    if (c.noiseMultiplier < own * (1 - 1e-9)) {
      return {
        allowed: false,
        reason: 'noise',
        noiseMultiplier: own,
        projectedEpsilon: 0,
        budgetEpsilon,
        detail: `the plan's noise multiplier ${c.noiseMultiplier} is below this institution's own calibration ${own} (target epsilon ${Math.min(c.targetEpsilon, budgetEpsilon)} over ${c.plannedRounds} rounds at rate ${c.clientSampleRate})`,
      };
    }
    const next = { sampleRate: c.clientSampleRate, noiseMultiplier: c.noiseMultiplier, steps: 1 };
    const check = checkBudget(this.spentEvents(), [next], this.options.budget, makeAccountant(c.accountant));
    return {
      allowed: check.allowed,
      reason: check.allowed ? undefined : 'budget',
      noiseMultiplier: own,
      projectedEpsilon: check.projectedEpsilon,
      budgetEpsilon,
      detail: check.allowed ? `projected epsilon ${check.projectedEpsilon.toFixed(4)} within budget ${budgetEpsilon}` : (check.reason ?? 'over budget'),
    };
  }

  recordClientRelease(task: TaskContext): void {
    const c = task.config.privacy.client!;
    this.appendRelease(
      task,
      {
        mode: 'client',
        sampleRate: c.clientSampleRate,
        noiseMultiplier: c.noiseMultiplier,
        steps: 1,
        clipNorm: c.updateClipNorm,
        delta: this.options.budget.delta,
      },
      makeAccountant(c.accountant),
    );
  }

  /**
   * The event's delta: the budget's, plus the sampler's cut tail charged at the budget's epsilon (the
   * institution never spends past it; privacy/discretisation-cost.ts). A budget epsilon so large that the
   * charge reaches 1 makes the statement vacuous, and the event says so (delta just below 1).
   */
  private chargedDelta(mechanism: Pick<MechanismReport, 'samplerTailMass'>): number {
    const charged = this.options.budget.delta + tailDelta(mechanism.samplerTailMass ?? 0, Math.min(this.options.budget.epsilon, 700));
    return Math.min(charged, 1 - 2 ** -53);
  }

  recordRelease(task: TaskContext, mechanism: MechanismReport): PrivacyEventMsg {
    const { sampleRate, noiseMultiplier, steps, clipNorm } = mechanism;
    return this.appendRelease(task, { mode: 'record', sampleRate, noiseMultiplier, steps, clipNorm, delta: this.chargedDelta(mechanism) }, this.accountant(task));
  }

  /**
   * One release's event for this task, signed with the identity key and appended only if it fits the budget,
   * checked in the same SQLite transaction (the binding check: a second process sharing this ledger cannot
   * slip an event in between); throws BudgetExceededError, recording nothing, when it does not fit.
   */
  private appendRelease(task: TaskContext, mechanism: Pick<LedgerEvent, 'mode' | 'sampleRate' | 'noiseMultiplier' | 'steps' | 'clipNorm' | 'delta'>, accountant: Accountant): PrivacyEventMsg {
    const event: LedgerEvent = {
      institutionId: this.options.institutionId,
      runId: task.runId,
      round: task.round,
      ...mechanism,
      modelVersion: task.modelVersion,
      time: new Date().toISOString(),
    };
    const signature = signEvent(event, this.options.identity);
    this.ledger.appendWithinBudget(event, signature, accountant);
    return { ...event, signature };
  }

  signedHead(): LedgerHeadMsg {
    const receipt = this.ledger.signedHead(this.options.institutionId);
    return { seq: receipt.seq, hash: Buffer.from(receipt.hash, 'hex'), signature: Buffer.from(receipt.signature, 'hex') };
  }

  rowHashAt(seq: number): Uint8Array | undefined {
    const hash = this.ledger.rowHashAt(seq);
    return hash === undefined ? undefined : Buffer.from(hash, 'hex');
  }

  /** Keeps a coordinator receipt; throws (nothing kept) when it goes back behind one already held, or names
   * another hash for a seq already held: the coordinator's ledger lost rows or was rewritten. */
  keepCoordinatorReceipt(receipt: LedgerReceipt): void {
    const latest = this.receipts.latest(receipt.ledgerKey);
    if (latest && receipt.seq < latest.seq) {
      throw new Error(`the coordinator's ledger head went back from seq ${latest.seq} to ${receipt.seq}: its ledger lost rows (check it with dpfed ledger --verify --receipts)`);
    }
    this.receipts.add(receipt);
  }

  /** The coordinator's receipts this institution holds (for `dpfed ledger --export-receipts`). */
  coordinatorReceipts(): LedgerReceipt[] {
    return this.receipts.all();
  }

  /** ε spent over every run in this institution's ledger, or (runId) in one run only. */
  spent(opts: { runId?: string } = {}): SpentEpsilon {
    const events = this.ledger.events({ institutionId: this.options.institutionId, runId: opts.runId });
    if (events.length === 0) return { epsilon: 0, delta: this.options.budget.delta };
    return this.ledger.spent(this.options.institutionId, makeAccountant('rdp'), opts);
  }
}
