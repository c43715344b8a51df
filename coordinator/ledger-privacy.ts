// The coordinator's privacy bookkeeping for a run, over the ε ledger kept in its own SQLite file:
// it refuses to schedule an institution whose recorded ε would pass its declared budget, checks the signed
// event each institution sends with its update (and with a private evaluation), adds the central noise of
// client-level DP, and appends the round's events inside the round's commit transaction (so a retried
// round never records twice): training events, then the evaluation events of the round's candidate.
import { makeAccountant } from '../privacy/accountant.ts';
import { checkBudget } from '../privacy/budget.ts';
import { addGaussianNoise } from '../privacy/gaussian-noise.ts';
import type { IdentityKey } from '../privacy/identity.ts';
import { EVALUATION_SENSITIVITY } from '../privacy/evaluation-mechanism.ts';
import { signEvent, validateLedgerEvent, verifyEventSignature, type LedgerEvent, type LedgerMode } from '../privacy/ledger-event.ts';
import { PrivacyLedger } from '../privacy/ledger.ts';
import type { PrivacyEventMsg } from '../proto/wire.ts';
import type { CoordinatorStore } from './coordinator-store.ts';
import type { Institution, InstitutionRegistry } from './institution-registry.ts';
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

  const ensureRegistered = (institution: { id: string; publicKey: Uint8Array; budget: { epsilon: number; delta: number } | null }) => {
    const budget = institution.budget ?? { epsilon: config.task.privacy.record?.targetEpsilon ?? 10, delta: config.task.privacy.record?.delta ?? 1e-5 };
    const row = ledger.institution(institution.id);
    if (!row || row.budget.epsilon !== budget.epsilon || row.budget.delta !== budget.delta) ledger.registerInstitution(institution.id, institution.publicKey, budget);
  };

  const eventsOf = (id: string) => ledger.events({ institutionId: id }).map((r) => r.event);

  /** A signed event from `institution` about this run's `round` at `modelVersion` in `mode`; throws an RpcError naming the field. */
  const checkSignedEvent = (institution: Institution, round: number, modelVersion: number, mode: LedgerMode, event: PrivacyEventMsg | null | undefined): LedgerEvent => {
    if (!event) throw invalidArgument(`header.privacy_event: required (${mode === 'evaluation' ? 'a private evaluation' : 'record-level privacy mode'})`);
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
    if (!verifyEventSignature(e, event.signature, institution.publicKey)) throw invalidArgument('header.privacy_event.signature: does not verify with the institution\'s identity key');
    return e;
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

    checkResultEvent(institution: Institution, round: number, modelVersion: number, event: PrivacyEventMsg | null | undefined): void {
      checkSignedEvent(institution, round, modelVersion, 'record', event);
    },

    checkEvaluationEvent(institution: Institution, round: number, event: PrivacyEventMsg | null | undefined): void {
      // The candidate of round r has model version r; one application of the Gaussian mechanism on the histograms.
      const e = checkSignedEvent(institution, round, round, 'evaluation', event);
      if (e.sampleRate !== 1 || e.steps !== 1) throw invalidArgument(`header.privacy_event: an evaluation event has sample rate 1 and one step, got ${e.sampleRate} and ${e.steps}`);
      if (e.clipNorm !== EVALUATION_SENSITIVITY) throw invalidArgument(`header.privacy_event.clip_norm: an evaluation event records the sensitivity ${EVALUATION_SENSITIVITY}, got ${e.clipNorm}`);
    },

    noiseSum(sum: Float32Array): void {
      const c = config.task.privacy.client!;
      addGaussianNoise(sum, c.noiseMultiplier * c.updateClipNorm);
    },

    updateNormBound(): number {
      return mode === 'client' ? config.task.privacy.client!.updateClipNorm : Number.POSITIVE_INFINITY;
    },

    commitWrites(round, modelVersion, events, participants, actualNoiseMultiplier, evaluationEvents) {
      return () => {
        if (mode === 'record') {
          const appendSigned = (id: string, event: PrivacyEventMsg, as: LedgerMode) => {
            const institution = registry.get(id);
            if (!institution) throw new Error(`commit: institution ${id} vanished`);
            ensureRegistered(institution);
            const { signature, ...fields } = event;
            ledger.append({ ...fields, mode: as } as LedgerEvent, signature);
          };
          for (const [id, event] of events) appendSigned(id, event, 'record');
          for (const [id, event] of evaluationEvents ?? []) appendSigned(id, event, 'evaluation');
        } else if (mode === 'client' && participants.length > 0) {
          const c = config.task.privacy.client!;
          const live = Math.max(participants.length, registry.all().filter((i) => !i.excludedReason).length);
          ensureRegistered({ id: FEDERATION_ID, publicKey: identity.publicKey, budget: { epsilon: 1e6, delta: c.delta } });
          const event: LedgerEvent = {
            institutionId: FEDERATION_ID, runId, round, mode: 'client',
            sampleRate: Math.min(1, config.sampleCount > 0 ? config.sampleCount / live : config.sampleFraction),
            noiseMultiplier: actualNoiseMultiplier ?? c.noiseMultiplier, steps: 1, clipNorm: c.updateClipNorm, delta: c.delta,
            modelVersion: modelVersion - 1, time: new Date().toISOString(),
          };
          ledger.append(event, signEvent(event, identity));
        }
      };
    },

    summary() {
      const rows = ledger.institutions();
      return rows
        .filter((r) => ledger.events({ institutionId: r.institutionId, runId }).length > 0)
        .map((r) => {
          const spent = ledger.spent(r.institutionId, accountant, { runId });
          return { id: r.institutionId, epsilon: spent.epsilon, delta: spent.delta, budget: r.institutionId === FEDERATION_ID ? null : r.budget.epsilon };
        });
    },
  };
}
