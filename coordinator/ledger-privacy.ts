// The coordinator's privacy bookkeeping for a run, over the ε ledger kept in its own SQLite file:
// it refuses to schedule an institution whose recorded ε would pass its declared budget, refuses a
// client-level round past the federation's (ε, δ) target, checks the signed event each institution sends
// with its update against the plan's public parameters (and with a private evaluation), and appends the
// events of every sum the moment it is revealed: a training sum's events, and a private evaluation's
// events when the noisy histogram sum is revealed (a round that then fails keeps them; re-appending the
// same signed event is a no-op). The coordinator never adds noise: the institutions do
// (privacy/release-policy.ts, privacy/evaluation-mechanism.ts).
import { makeAccountant } from '@dpfed/privacy/accountant';
import { checkBudget } from '@dpfed/privacy/budget';
import type { IdentityKey } from '@dpfed/privacy/identity';
import { EVALUATION_SENSITIVITY } from '@dpfed/privacy/evaluation-mechanism';
import { signEvent, validateLedgerEvent, verifyEventSignature, type LedgerEvent, type LedgerMode } from '@dpfed/privacy/ledger-event';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import type { PrivacyEventMsg } from '@dpfed/proto/wire';
import type { CoordinatorStore } from './coordinator-store.ts';
import type { Institution, InstitutionRegistry } from './institution-registry.ts';
import { trainingReleasePolicy } from '@dpfed/privacy/release-policy';
import type { RoundPrivacy } from './round-privacy.ts';
import { invalidArgument } from './rpc-error.ts';
import type { RunConfig } from './run-config.ts';

/** Client-level DP is a property of the federation, not of one institution: its events are kept under this id. */
export const FEDERATION_ID = 'federation';

export function coordinatorPrivacy(ctx: { runId: string; config: RunConfig; store: CoordinatorStore; registry: InstitutionRegistry; identity: IdentityKey }): RoundPrivacy | undefined {
  const { runId, config, store, registry, identity } = ctx;
  const mode = config.task.privacy.mode;
  const ledger = new PrivacyLedger(store.db, { countersigner: identity });
  const accountant = makeAccountant(config.task.privacy.record?.accountant ?? 'rdp');
  const refused = new Set<string>();
  /** Institutions found within budget, with the ledger head and budget they were checked at. */
  const admitted = new Map<string, string>();

  const client = config.task.privacy.client;
  /** The federation's own budget under client-level DP: the run's target. */
  const federationBudget = { epsilon: client?.targetEpsilon ?? 1, delta: client?.delta ?? 1e-5 };
  const clientAccountant = makeAccountant(client?.accountant ?? 'rdp');

  const ensureRegistered = (institution: { id: string; publicKey: Uint8Array; budget: { epsilon: number; delta: number } | null }) => {
    const budget = institution.budget ?? { epsilon: config.task.privacy.record?.targetEpsilon ?? 10, delta: config.task.privacy.record?.delta ?? 1e-5 };
    const row = ledger.institution(institution.id);
    if (!row || row.budget.epsilon !== budget.epsilon || row.budget.delta !== budget.delta) ledger.registerInstitution(institution.id, institution.publicKey, budget);
  };

  const eventsOf = (id: string) => ledger.events({ institutionId: id }).map((r) => r.event);

  /** Appends an institution's signed event (checked when it arrived) to the coordinator's ledger; the same event again is a no-op. */
  const appendSigned = (id: string, event: PrivacyEventMsg, as: LedgerMode) => {
    const institution = registry.get(id);
    if (!institution) throw new Error(`ledger: institution ${id} vanished`);
    ensureRegistered(institution);
    const { signature, ...fields } = event;
    ledger.append({ ...fields, mode: as } as LedgerEvent, signature);
  };

  /** A signed event from `institution` about this run's `round` at `modelVersion` in `mode`; throws an RpcError naming the field. */
  const checkSignedEvent = (institution: Institution, round: number, modelVersion: number, mode: LedgerMode, event: PrivacyEventMsg | null | undefined): LedgerEvent => {
    if (!event) throw invalidArgument(`header.privacy_event: required (${mode === 'evaluation' || mode === 'cross-site' ? 'a private evaluation' : 'record-level privacy mode'})`);
    const { signature: _signature, ...fields } = event;
    const e = { ...fields, mode: fields.mode as LedgerEvent['mode'] };
    try {
      validateLedgerEvent(e);
    } catch (error) {
      throw invalidArgument(`header.privacy_event: ${(error as Error).message}`);
    }
    if (e.institutionId !== institution.id) throw invalidArgument(`header.privacy_event.institution_id: "${e.institutionId}" is not the sender "${institution.id}"`);
    if (e.runId !== runId) throw invalidArgument(`header.privacy_event.run_id: "${e.runId}" is not this run`);
    if (e.round !== round) throw invalidArgument(`header.privacy_event.round: ${e.round} is not round ${round}`);
    if (e.modelVersion !== modelVersion) throw invalidArgument(`header.privacy_event.model_version: ${e.modelVersion} is not ${modelVersion}`);
    if (e.mode !== mode) throw invalidArgument(`header.privacy_event.mode: expected "${mode}", got "${e.mode}"`);
    if (!verifyEventSignature(e, event.signature, institution.publicKey)) throw invalidArgument("header.privacy_event.signature: does not verify with the institution's identity key");
    return e;
  };

  /** An evaluation release (a round's or the cross-site one): the Gaussian mechanism applied once to the histograms, sensitivity 1. */
  const checkEvaluationMechanism = (e: LedgerEvent) => {
    if (e.sampleRate !== 1 || e.steps !== 1) throw invalidArgument(`header.privacy_event: an evaluation event has sample rate 1 and one step, got ${e.sampleRate} and ${e.steps}`);
    if (e.clipNorm !== EVALUATION_SENSITIVITY) throw invalidArgument(`header.privacy_event.clip_norm: an evaluation event records the sensitivity ${EVALUATION_SENSITIVITY}, got ${e.clipNorm}`);
  };

  return {
    admissible(round: number, candidates: Institution[]): Institution[] {
      if (mode !== 'record') return candidates;
      // The answer changes only when the ledger grows or a budget is re-declared: the waiting loop asks often.
      const head = ledger.head().seq;
      return candidates.filter((institution) => {
        if (!institution.budget) return true;
        const key = `${head}:${institution.budget.epsilon}:${institution.budget.delta}`;
        if (admitted.get(institution.id) === key) return true;
        const events = eventsOf(institution.id);
        // The next round is projected as the last training release plus, once the institution has released
        // evaluations, the last evaluation (a round without evaluation is then over-projected: conservative).
        const lastOf = (m: LedgerMode) => [...events].reverse().find((e) => e.mode === m);
        const next = [lastOf('record') ?? events[events.length - 1], lastOf('evaluation')].filter((e): e is LedgerEvent => Boolean(e));
        const check = events.length === 0 ? null : checkBudget(events, next, institution.budget, accountant);
        if (!check || check.allowed) {
          admitted.set(institution.id, key);
          return true;
        }
        if (!refused.has(institution.id)) {
          refused.add(institution.id);
          const reason = `coordinator refused to schedule: ${check.reason}`;
          store.db.transaction(() => {
            store.recordSchedulingRefusal(runId, round, institution.id, reason, check.projectedEpsilon, institution.budget!.epsilon);
            ensureRegistered(institution);
            ledger.recordRefusal(institution.id, runId, round, reason, check.projectedEpsilon);
          })();
          registry.exclude(institution.id, reason);
        }
        return false;
      });
    },

    releasedRound(round: number): boolean {
      return mode === 'client' && ledger.events({ institutionId: FEDERATION_ID, runId }).some((r) => r.event.round === round);
    },

    roundRefusal(round: number): string | null {
      if (mode !== 'client' || !client) return null;
      const events = ledger.events({ institutionId: FEDERATION_ID, runId }).map((r) => r.event);
      const next = { sampleRate: client.clientSampleRate, noiseMultiplier: client.noiseMultiplier, steps: 1 };
      const check = checkBudget(events, [next], federationBudget, clientAccountant);
      if (check.allowed) return null;
      return `round ${round}: refused: client-level epsilon after it would be ${check.projectedEpsilon.toFixed(4)} > the run's target ${federationBudget.epsilon} at delta ${federationBudget.delta}`;
    },

    checkResultEvent(institution: Institution, round: number, modelVersion: number, event: PrivacyEventMsg | null | undefined): void {
      checkSignedEvent(institution, round, modelVersion, 'record', event);
      // The plan's public mechanism: q and the step count are parameters of the run, never B/n.
      const { signature: _signature, ...e } = event!;
      const record = config.task.privacy.record!;
      if (e.sampleRate !== record.sampleRate) throw invalidArgument(`header.privacy_event.sample_rate: ${e.sampleRate} is not the plan's public rate ${record.sampleRate}`);
      if (e.steps !== config.task.localSteps) throw invalidArgument(`header.privacy_event.steps: ${e.steps} is not the plan's ${config.task.localSteps} local steps`);
      if (e.clipNorm !== record.clipNorm) throw invalidArgument(`header.privacy_event.clip_norm: ${e.clipNorm} is not the plan's ${record.clipNorm}`);
    },

    checkEvaluationEvent(institution: Institution, round: number, event: PrivacyEventMsg | null | undefined): void {
      // The candidate of round r has model version r; one application of the Gaussian mechanism on the histograms.
      checkEvaluationMechanism(checkSignedEvent(institution, round, round, 'evaluation', event));
    },

    checkCrossSiteEvent(institution: Institution, round: number, event: PrivacyEventMsg | null | undefined): void {
      // The final model is the committed model of the last round: model version = round.
      checkEvaluationMechanism(checkSignedEvent(institution, round, round, 'cross-site', event));
    },

    recordCrossSiteEvent(institutionId: string, event: PrivacyEventMsg): void {
      store.db.transaction(() => appendSigned(institutionId, event, 'cross-site'))();
    },

    recordRevealedSum(round, modelVersion, events, actualNoiseMultiplier) {
      store.db.transaction(() => {
        if (mode === 'record') {
          for (const [id, event] of events) appendSigned(id, event, 'record');
        } else if (mode === 'client' && client) {
          ensureRegistered({ id: FEDERATION_ID, publicKey: identity.publicKey, budget: federationBudget });
          const policy = trainingReleasePolicy(config.task);
          const sum = policy.sumEvent(actualNoiseMultiplier ?? client.noiseMultiplier)!;
          const event: LedgerEvent = { institutionId: FEDERATION_ID, runId, round, mode: 'client', ...sum, modelVersion, time: new Date().toISOString() };
          ledger.append(event, signEvent(event, identity));
        }
      })();
    },

    recordEvaluationEvents(_round, events) {
      // The same rule as a training sum: the institutions' signed evaluation events, the moment the noisy
      // histogram sum is revealed, in their own transaction (idempotent: the same signed event is a no-op).
      if (events.size === 0) return;
      store.db.transaction(() => {
        for (const [id, event] of events) appendSigned(id, event, 'evaluation');
      })();
    },

    summary() {
      const rows = ledger.institutions();
      return rows
        .filter((r) => ledger.events({ institutionId: r.institutionId, runId }).length > 0)
        .map((r) => {
          const spent = ledger.spent(r.institutionId, accountant, { runId });
          return { id: r.institutionId, epsilon: spent.epsilon, delta: spent.delta, budget: r.budget.epsilon };
        });
    },
  };
}
