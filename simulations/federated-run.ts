// One federated setting of a simulation: a real coordinator (its SQLite store, strategy, round machine,
// secure aggregation and ε ledger) and one FederationClient per institution in this thread, each with a
// TfjsLearner on its own training rows and, under DP, its own InstitutionPrivacy ledger (SQLite files in
// a temp dir, removed afterwards). Institutions are enrolled with fresh identity keys, as an operator
// would. After each committed round the global model is read back from the coordinator's store and
// scored on the common test rows; the row's figures are those of the last committed model, and the ε per
// institution (in all, and after each committed round) is composed from its own ledger.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coordinatorPrivacy } from '@dpfed/coordinator/ledger-privacy';
import type { RoundSummary } from '@dpfed/coordinator/round-machine';
import { FederationClient } from '@dpfed/client/federation-client';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import { TfjsLearner } from '@dpfed/client/tfjs-learner';
import { MAX_RING_SLOTS } from '@dpfed/client/local-trainer';
import { SharedNoisePools } from '@dpfed/privacy/shared-noise-pools';
import { generateIdentity } from '@dpfed/privacy/identity';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import Database from 'better-sqlite3';
import { parseModelSpec } from '@dpfed/proto/model-spec';
import { DropoutSchedule } from './dropout-schedule.ts';
import { startSimCoordinator, type TransportName } from './federation-transport.ts';
import type { SimJob } from './sim-grid.ts';
import type { SimData } from './sim-data.ts';
import type { Partition } from './sim-partition.ts';
import type { SimRecord } from './sim-result.ts';
import { droppedPerRound, simRunConfig } from './sim-run-config.ts';
import { testRowsEvaluator } from './test-rows-evaluator.ts';

type Tf = typeof import('@dpfed/client/tfjs');

/**
 * Where a setting's SQLite files live: tmpfs (/dev/shm) when the machine has one, since they are scratch
 * and on a file system that syncs to disk, opening, committing and closing some 20 databases per setting
 * costs a third as much again as the federation's rounds; else the system's temp dir.
 */
const SCRATCH = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

/** An institution's budget over its target ε: room for the accountant's rounding, never used to add rounds. */
const BUDGET_SLACK = 1.1;

export interface FederatedRunOptions {
  tf: Tf;
  job: SimJob;
  data: SimData;
  partition: Partition;
  transport: TransportName;
  /** Called after each committed round with its test-row AUC (progress). */
  onRound?: (round: number, auc: number) => void;
}

/** ε of `institutionId` in `runId` after each of `rounds`, from its ledger file (opened read-only beside its writer). */
function spentThroughRounds(ledgerPath: string, institutionId: string, runId: string, rounds: readonly number[]): number[] {
  const db = new Database(ledgerPath, { readonly: true });
  try {
    return new PrivacyLedger(db).spentThroughRounds(institutionId, makeAccountant('rdp'), runId, rounds).map((s) => s.epsilon);
  } finally {
    db.close();
  }
}

export async function runFederated(o: FederatedRunOptions): Promise<SimRecord> {
  const started = performance.now();
  const { job, partition, tf } = o;
  const s = job.setting;
  const ids = partition.institutions.map((i) => i.id);
  const config = simRunConfig(job, { features: o.data.dim, schema: o.data.schema, institutions: ids.length });
  const spec = parseModelSpec(config.modelSpec);
  const dir = mkdtempSync(join(SCRATCH, 'dpfed-sim-'));
  const evaluator = testRowsEvaluator(tf, spec, partition.test);
  const schedule = new DropoutSchedule(ids, droppedPerRound(ids.length, s.dropout), `${s.seed}`);
  const learners: TfjsLearner[] = [];
  const ledgers = new Map<string, InstitutionPrivacy>();
  const clients: FederationClient[] = [];
  // record-level DP: the institutions take turns in this thread and draw at one scale, so one noise pool
  // (and one worker thread drawing ahead on another core) serves them all
  const noise = s.privacy === 'record' ? new SharedNoisePools({ sharers: ids.length, maxSlots: MAX_RING_SLOTS }) : undefined;
  let sim: Awaited<ReturnType<typeof startSimCoordinator>> | undefined;
  try {
    sim = await startSimCoordinator(o.transport, {
      dbPath: join(dir, 'coordinator.sqlite'),
      identityPath: join(dir, 'coordinator.key'),
      runId: `sim-${job.id}`,
      config,
      privacy: coordinatorPrivacy,
      evaluator,
      revocationPollMs: 60_000,
    });
    const { coordinator } = sim;
    const aucPerRound: number[] = [];
    const committedRounds: number[] = [];
    coordinator.machine.on('round', (summary: RoundSummary) => {
      const model = coordinator.store.model(coordinator.runId, summary.modelVersion);
      if (!model) return;
      const auc = evaluator.scores(model.parameters).auc;
      aucPerRound.push(auc);
      committedRounds.push(summary.round);
      o.onRound?.(summary.round, auc);
    });
    const budget = s.epsilon !== null && s.delta !== null ? { epsilon: s.epsilon * BUDGET_SLACK, delta: s.delta } : undefined;
    for (const institution of partition.institutions) {
      const identity = generateIdentity();
      coordinator.enrolment.add(institution.id, identity.publicKey);
      const learner = new TfjsLearner(tf, institution.train, institution.own, { schema: o.data.schema, trainer: { noiseWorker: false, sharedNoise: noise } });
      learners.push(learner);
      const privacy = budget ? new InstitutionPrivacy({ institutionId: institution.id, identity, budget, ledgerPath: join(dir, `${institution.id}.ledger.sqlite`) }) : undefined;
      if (privacy) ledgers.set(institution.id, privacy);
      clients.push(
        new FederationClient({
          ...sim.connect(),
          institutionId: institution.id,
          identity,
          learner,
          privacy,
          budget,
          reconnectForMs: 30_000,
          // each global model is scored on the common test rows here; the institutions' own view is not needed
          localMetrics: false,
          sitsOut: s.dropout > 0 ? schedule.sitsOut(institution.id) : undefined,
        }),
      );
    }
    await Promise.all(clients.map((c) => c.run()));
    await coordinator.finished;
    const last = coordinator.store.lastCommittedRound(coordinator.runId);
    const final = coordinator.store.model(coordinator.runId, last);
    if (!final) throw new Error(`setting ${job.id}: the model of round ${last} is missing`);
    const scores = evaluator.scores(final.parameters);
    const epsilonSpent: Record<string, number> = {};
    const epsilonPerRound: Record<string, number[]> = {};
    for (const [id, ledger] of ledgers) {
      epsilonSpent[id] = ledger.spent({ runId: coordinator.runId }).epsilon;
      // what it had spent after each committed round: its own ledger's events up to that round, composed
      epsilonPerRound[id] = spentThroughRounds(join(dir, `${id}.ledger.sqlite`), id, coordinator.runId, committedRounds);
    }
    return {
      settingId: job.id,
      ...s,
      institution: null,
      scoredOn: 'test',
      ...scores,
      aucPerRound,
      epsilonSpent,
      epsilonPerRound,
      seconds: (performance.now() - started) / 1000,
      scoredRows: partition.testFingerprint,
    };
  } finally {
    for (const c of clients) c.close();
    await sim?.coordinator.close();
    for (const ledger of ledgers.values()) ledger.close();
    for (const learner of learners) learner.dispose();
    await noise?.dispose();
    evaluator.close?.();
    rmSync(dir, { recursive: true, force: true });
  }
}
