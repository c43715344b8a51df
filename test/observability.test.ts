// Observability of a real federation on 127.0.0.1 (mutual TLS, record-level DP, secure aggregation):
// the coordinator's and an institution's Prometheus series after the run, /healthz and /readyz before
// and after they are ready, and the structured log lines of both sides: JSON with run, round,
// institution and phase, and none of the institutions' secrets or row counts.
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ClientMetrics } from '@dpfed/client/client-metrics';
import { clientContext, logClientEvents } from '@dpfed/client/client-event-log';
import { logRoundEvents, roundContext } from '@dpfed/coordinator/coordinator-event-log';
import { CoordinatorMetrics, refusalReason } from '@dpfed/coordinator/coordinator-metrics';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { createLogger, lineLogger } from '@dpfed/proto/logger';
import { startMetricsServer, type MetricsServer } from '@dpfed/proto/metrics-server';
import { bankSlices, cleanUp, makeInstitution, runConfig, start, startTestCoordinator, tempDir, tfjsInstitution, within, type TestInstitution } from './helpers/federation-fixture.ts';
import { fetchText, parseMetrics, sample } from './helpers/prometheus-text.ts';

let dir: string | undefined;
let coordinator: Coordinator | undefined;
let institutions: TestInstitution[] = [];
const servers: MetricsServer[] = [];

afterEach(async () => {
  await cleanUp({ institutions, coordinators: [coordinator], dir });
  for (const s of servers.splice(0)) await s.close();
  institutions = [];
  coordinator = undefined;
  dir = undefined;
});

/** Every string and number in a parsed log line (but its time and pid), with the path it sits at. */
function leaves(value: unknown, path = ''): { path: string; value: string | number }[] {
  if (typeof value === 'string' || typeof value === 'number') return [{ path, value }];
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => (path === '' && (k === 'time' || k === 'pid') ? [] : leaves(v, path ? `${path}.${k}` : k)));
  return [];
}

describe('observability', () => {
  it('metrics, health and structured logs of a record-mode secagg federation', async () => {
    dir = tempDir('dpfed-observability-');
    const coordinatorMetrics = new CoordinatorMetrics();
    const coordinatorHttp = await startMetricsServer({ registry: coordinatorMetrics.registry, port: 0, notReady: () => coordinatorMetrics.notReady() });
    servers.push(coordinatorHttp);
    const base = `http://${coordinatorHttp.address}`;
    expect((await fetchText(`${base}/healthz`)).status).toBe(200);
    const notYet = await fetchText(`${base}/readyz`);
    expect(notYet.status).toBe(503);
    expect(notYet.body).toContain('gRPC server not bound');

    const coordinatorLines: string[] = [];
    let started: Coordinator | undefined;
    const coordinatorLogger = createLogger({ level: 'debug', destination: { write: (line) => coordinatorLines.push(line) }, context: roundContext(() => started) });
    const rounds = 2;
    const config = runConfig(['--rounds', String(rounds), '--min-clients', '3', '--privacy', 'record', '--epsilon', '3', '--aggregation', 'secagg', '--round-timeout', '60', '--phase-timeout', '30']);
    coordinator = started = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, metrics: coordinatorMetrics, log: lineLogger(coordinatorLogger) });
    logRoundEvents(coordinator.machine, coordinatorLogger);
    expect((await fetchText(`${base}/readyz`)).status).toBe(200);
    const address = `127.0.0.1:${coordinator.port}`;

    // three banks, each with its own metrics, logger and (bank-1) metrics server
    const rowsPerBank = [611, 587, 643];
    const slices = rowsPerBank.map((rows, k) => bankSlices(1, { rowsPerBank: rows, seed: `observability-${k}` })[0]);
    const clientLines = new Map<string, string[]>();
    const clientMetrics = new Map<string, ClientMetrics>();
    const registrationSecrets: { what: string; bytes: Buffer }[] = [];
    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      const lines: string[] = [];
      clientLines.set(id, lines);
      const context = clientContext();
      const logger = createLogger({ level: 'debug', base: { institution: id }, destination: { write: (line) => lines.push(line) }, context: context.context });
      const metrics = new ClientMetrics({ processMetrics: k === 0 });
      clientMetrics.set(id, metrics);
      const institution = await tfjsInstitution({
        id,
        address,
        data: slices[k],
        seed: `obs-${k}`,
        privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`) },
        clientOptions: { wireBytes: metrics.wireBytes, log: lineLogger(logger, `[${id}] `) },
      });
      context.observe(institution.client);
      logClientEvents(institution.client, logger);
      // record what each registration sends that is secret or random (nonce, signature); the call goes through unchanged
      const connection = (institution.client as unknown as { connection: { register(request: { nonce: Uint8Array; signature: Uint8Array }): Promise<unknown> } }).connection;
      const register = connection.register.bind(connection);
      connection.register = (request) => {
        registrationSecrets.push({ what: `${id} registration nonce`, bytes: Buffer.from(request.nonce) }, { what: `${id} registration signature`, bytes: Buffer.from(request.signature) });
        return register(request);
      };
      metrics.observe(institution.client, (opts) => institution.privacy!.spent(opts));
      institutions.push(institution);
    }
    const bank1 = clientMetrics.get('bank-1')!;
    const bank1Http = await startMetricsServer({ registry: bank1.registry, port: 0, notReady: () => bank1.notReady() });
    servers.push(bank1Http);
    expect((await fetchText(`http://${bank1Http.address}/healthz`)).status).toBe(200);
    expect((await fetchText(`http://${bank1Http.address}/readyz`)).status).toBe(503);

    // an institution the operator never enrolled: its registration is refused (and counted)
    const stranger = makeInstitution({ id: 'rogue', address, learner: institutions[0].learner, enrol: false });
    await expect(stranger.client.register()).rejects.toMatchObject({ code: 7 });
    stranger.client.close();

    const registered = new Promise((resolve) => institutions[0].client.once('registered', resolve));
    const results = start(institutions);
    await within(registered, 30_000, 'bank-1 to register');
    expect((await fetchText(`http://${bank1Http.address}/readyz`)).status).toBe(200);
    const finished = await within(results, 180_000, 'the federation to finish');
    await coordinator.finished;

    // ---- the coordinator's series ----
    const m = parseMetrics((await fetchText(`${base}/metrics`)).body);
    expect(sample(m, 'dpfed_rounds_committed_total')).toBe(rounds);
    expect(sample(m, 'dpfed_rounds_failed_total')).toBe(0);
    expect(sample(m, 'dpfed_round')).toBe(rounds);
    expect(sample(m, 'dpfed_round_participants')).toBe(3);
    expect(sample(m, 'dpfed_round_participants_distribution_count')).toBe(rounds);
    for (const phase of ['train', 'evaluate', 'commit']) {
      expect(sample(m, 'dpfed_round_phase_seconds_count', { phase })).toBe(rounds);
      expect(sample(m, 'dpfed_round_phase_seconds_sum', { phase })).toBeGreaterThan(0);
    }
    expect(m.help.has('dpfed_dropouts_total')).toBe(true);
    expect(m.help.has('dpfed_declines_total')).toBe(true);
    // bytes: at least the three banks' updates of two rounds went in, and the models out
    const parameters = coordinator.machine.globalModel.length;
    expect(sample(m, 'dpfed_bytes_received_total')).toBeGreaterThan(3 * rounds * parameters * 4);
    expect(sample(m, 'dpfed_bytes_sent_total')).toBeGreaterThan(3 * parameters * 4);
    const summary = coordinator.machine.privacySummary();
    expect(summary.map((p) => p.id).sort()).toEqual(['bank-1', 'bank-2', 'bank-3']);
    for (const p of summary) {
      expect(p.epsilon).toBeGreaterThan(0);
      expect(sample(m, 'dpfed_epsilon_spent', { institution: p.id })).toBeCloseTo(p.epsilon, 9);
    }
    const refusals = m.samples.filter((s) => s.name === 'dpfed_refused_requests_total' && s.labels.code === 'PERMISSION_DENIED');
    expect(refusals.map((s) => [s.labels.reason, s.value])).toEqual([['institution_id', 1]]);
    expect(sample(m, 'dpfed_coordinator_process_cpu_seconds_total')).toBeGreaterThan(0);

    // ---- an institution's series ----
    const c = parseMetrics((await fetchText(`http://${bank1Http.address}/metrics`)).body);
    expect(sample(c, 'dpfed_client_rounds_trained_total')).toBe(finished[0].roundsTrained);
    expect(sample(c, 'dpfed_client_rounds_evaluated_total')).toBe(finished[0].roundsEvaluated);
    expect(finished[0].roundsTrained).toBe(rounds);
    expect(sample(c, 'dpfed_client_bytes_sent_total')).toBeGreaterThan(rounds * parameters * 4);
    expect(sample(c, 'dpfed_client_bytes_received_total')).toBeGreaterThan(parameters * 4);
    expect(sample(c, 'dpfed_client_registered')).toBe(1);
    const runEpsilon = institutions[0].privacy!.spent({ runId: coordinator.runId }).epsilon;
    expect(runEpsilon).toBeGreaterThan(0);
    expect(sample(c, 'dpfed_client_epsilon_spent', { scope: 'run' })).toBeCloseTo(runEpsilon, 9);
    expect(sample(c, 'dpfed_client_epsilon_spent', { scope: 'total' })).toBeGreaterThanOrEqual(runEpsilon);
    expect(c.help.has('dpfed_client_declines_total')).toBe(true);

    // ---- the logs: JSON lines with their context ----
    const coordinatorRecords = coordinatorLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const committed = coordinatorRecords.filter((r) => r.msg === 'round committed');
    expect(committed.map((r) => [r.run, r.round, r.phase, r.participants])).toEqual([
      [coordinator.runId, 1, 'commit', 3],
      [coordinator.runId, 2, 'commit', 3],
    ]);
    for (const r of coordinatorRecords) expect(r).toMatchObject({ level: expect.any(String), time: expect.any(String) });
    for (const r of coordinatorRecords.filter((r) => r.round !== undefined)) expect(r.run).toBe(coordinator.runId);
    const clientRecords = [...clientLines].flatMap(([id, lines]) => lines.map((line) => ({ id, record: JSON.parse(line) as Record<string, unknown> })));
    for (const { id, record } of clientRecords) expect(record.institution).toBe(id);
    const trainedLines = clientRecords.filter(({ record }) => record.msg === 'update sent').map(({ id, record }) => [id, record.run, record.round, record.phase]);
    expect(trainedLines.sort()).toEqual(['bank-1', 'bank-2', 'bank-3'].flatMap((id) => [1, 2].map((round) => [id, coordinator!.runId, round, 'train'])).sort());
    const evaluations = finished.reduce((sum, r) => sum + r.roundsEvaluated, 0);
    expect(evaluations).toBeGreaterThan(0);
    expect(clientRecords.filter(({ record }) => record.msg === 'evaluation sent' && record.phase === 'evaluate' && record.run === coordinator!.runId)).toHaveLength(evaluations);
    // an institution that waited for the others prepared for round 1 from a WAIT's configuration, and says so
    const prepared = clientRecords.filter(({ record }) => record.msg === 'prepared for the first round');
    expect(prepared.length).toBeGreaterThan(0);
    for (const { record } of prepared) expect([record.run, record.phase, typeof record.seconds]).toEqual([coordinator!.runId, 'prepare', 'number']);

    // ---- and no secrets or row counts in any of them ----
    const everything = [...coordinatorLines, ...[...clientLines.values()].flat()];
    const forbidden: { what: string; text: string }[] = [];
    for (const i of institutions) {
      const session = (i.client as unknown as { session: Uint8Array }).session;
      expect(session.length).toBeGreaterThan(0);
      forbidden.push({ what: `${i.id} session token`, text: Buffer.from(session).toString('hex') }, { what: `${i.id} session token`, text: Buffer.from(session).toString('base64') });
      forbidden.push({ what: `${i.id} identity key`, text: Buffer.from(i.identity.seed).toString('hex') }, { what: `${i.id} identity key`, text: Buffer.from(i.identity.seed).toString('base64') });
    }
    expect(registrationSecrets.length).toBeGreaterThanOrEqual(6);
    for (const s of registrationSecrets) forbidden.push({ what: s.what, text: s.bytes.toString('hex') }, { what: s.what, text: s.bytes.toString('base64') });
    for (const line of everything) for (const f of forbidden) expect(line.includes(f.text), `${f.what} in ${line}`).toBe(false);
    const rowCounts = new Set<number>();
    institutions.forEach((i, k) => {
      rowCounts.add(rowsPerBank[k]);
      rowCounts.add(i.validation!.n);
      rowCounts.add(rowsPerBank[k] - i.validation!.n);
    });
    expect(rowCounts.size).toBeGreaterThanOrEqual(6);
    for (const line of everything) {
      for (const leaf of leaves(JSON.parse(line))) {
        for (const n of rowCounts) {
          const found = typeof leaf.value === 'number' ? leaf.value === n : new RegExp(`(^|[^0-9.])${n}([^0-9.]|$)`).test(leaf.value);
          expect(found, `row count ${n} at ${leaf.path} in ${line}`).toBe(false);
        }
      }
    }
  }, 240_000);

  it('text format: one readable line per record, context first; secrets redacted by field name', () => {
    const lines: string[] = [];
    const logger = createLogger({ format: 'text', level: 'info', base: { institution: 'bank-7' }, destination: { write: (line) => lines.push(line) }, context: () => ({ run: 'run-x' }) });
    logger.info({ round: 4, phase: 'train', session: 'deadbeef', nested: { nonce: 'cafe' } }, 'update sent');
    logger.debug('not at info');
    lineLogger(logger, '[bank-7] ')('[bank-7] internal error: boom');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO \[bank-7 run=run-x round=4 phase=train\] update sent session=\[redacted\] nested=\{"nonce":"\[redacted\]"\}\n$/);
    expect(lines[1]).toMatch(/ ERROR \[bank-7 run=run-x\] internal error: boom\n$/);
  });

  it('the short reason of a refusal is the field its message names', () => {
    expect(refusalReason('institution_id: institution "x" is not enrolled')).toBe('institution_id');
    expect(refusalReason('tensor.dense_1/kernel: shape [3] expected')).toBe('tensor');
    expect(refusalReason('tensors[2]: missing')).toBe('tensors');
    expect(refusalReason('result: at most 4 results may be open at once on one session')).toBe('result');
    expect(refusalReason('no field named here')).toBe('other');
  });
});
