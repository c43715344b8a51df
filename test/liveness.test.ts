// Liveness: no silent participant, dropout or decliner stalls the federation. Real coordinators on
// 127.0.0.1 (mutual TLS, enrolment), real FederationClients and hand-written gRPC clients.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import { FederationClient } from '@dpfed/client/federation-client';
import { startCoordinator, type Coordinator } from '@dpfed/coordinator/coordinator-server';
import { coordinatorPrivacy } from '@dpfed/coordinator/ledger-privacy';
import { FAILED_ROUND_BACKOFF } from '@dpfed/coordinator/round-machine';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { signedRegistration } from '@dpfed/client/registration-request';
import { PROTOCOL_VERSION, type Envelope } from '@dpfed/proto/wire';
import {
  DPFED_BIN,
  ROOT,
  ShiftLearner,
  cleanUp,
  enrol,
  makeInstitution,
  recordRounds,
  runConfig,
  start,
  startTestCoordinator,
  tempDir,
  testCredentials,
  testPki,
  within,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

let dir: string | undefined;
let coordinators: Coordinator[] = [];
let institutions: TestInstitution[] = [];
let handWritten: { close(): void }[] = [];

afterEach(async () => {
  for (const h of handWritten) h.close();
  handWritten = [];
  await cleanUp({ institutions, coordinators, dir });
  institutions = [];
  coordinators = [];
  dir = undefined;
});

/** An institution written by hand on the wire: enrolled, registered, then whatever the test makes it do. */
async function handWrittenInstitution(coordinator: Coordinator, id: string): Promise<{ connection: CoordinatorConnection; envelope: (round?: number) => Envelope; identity: IdentityKey }> {
  const identity = generateIdentity();
  enrol(coordinator, id, identity.publicKey);
  const connection = new CoordinatorConnection(`127.0.0.1:${coordinator.port}`, testCredentials(id));
  const challenge = await connection.challenge({ institutionId: id });
  const registered = await connection.register(signedRegistration(challenge, { institutionId: id, identity, budget: null, declaredExamples: 0, clientVersion: 'liveness-test' }));
  const closable = { close: () => connection.close() };
  handWritten.push(closable);
  const envelope = (round = 0): Envelope => ({ runId: registered.runId, round, modelVersion: 0, institutionId: id, session: registered.session });
  return { connection, envelope, identity };
}

function shiftBanks(address: string, count: number, extra: Partial<Parameters<typeof makeInstitution>[0]> = {}): TestInstitution[] {
  return Array.from({ length: count }, (_, k) => makeInstitution({ id: `bank-${k + 1}`, address, learner: new ShiftLearner(0.01 * (k + 1), 100), pollMs: 2_000, ...extra }));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('liveness', () => {
  it('a sampled participant that only heartbeats is dropped at the task-pickup deadline, not the round timeout, and later rounds do not wait for it', async () => {
    dir = tempDir('dpfed-liveness-');
    const config = runConfig(['--rounds', '3', '--min-clients', '3', '--wait-for', '4', '--round-timeout', '60', '--phase-timeout', '30', '--task-pickup-timeout', '2']);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    coordinators.push(coordinator);
    const seen = recordRounds(coordinator);
    const silent = await handWrittenInstitution(coordinator, 'observer');
    // registered and heartbeating (so it counts as live and is sampled), but it never fetches a task
    let heartbeats = 0;
    const beat = setInterval(
      () =>
        void silent.connection.heartbeat(silent.envelope()).then(
          () => heartbeats++,
          () => undefined,
        ),
      300,
    );
    handWritten.push({ close: () => clearInterval(beat) });
    await silent.connection.heartbeat(silent.envelope());
    institutions = shiftBanks(`127.0.0.1:${coordinator.port}`, 3);
    const t0 = Date.now();
    const results = await within(start(institutions), 25_000, 'three rounds');
    const elapsed = Date.now() - t0;
    await coordinator.finished;

    expect(seen.failures).toEqual([]);
    expect(seen.rounds.map((r) => r.round)).toEqual([1, 2, 3]);
    // round 1 sampled the silent institution: it closed at the 2 s pickup deadline, not at the 60 s round timeout
    expect(seen.rounds[0].dropped).toEqual(['observer']);
    expect(seen.rounds[0].participants).toBe(3);
    expect(seen.rounds[0].seconds).toBeGreaterThanOrEqual(1.8);
    expect(seen.rounds[0].seconds).toBeLessThan(10);
    // later rounds did not sample it (it never showed life), so they ran at the pace of the others
    for (const r of seen.rounds.slice(1)) {
      expect(r.dropped).toEqual([]);
      expect(r.participants).toBe(3);
      expect(r.seconds).toBeLessThan(1.5);
    }
    expect(elapsed).toBeLessThan(15_000);
    expect(heartbeats).toBeGreaterThan(3);
    const { store, runId } = coordinator;
    const participants = store.db.prepare('SELECT round, status, detail FROM participants WHERE run_id = ? AND institution_id = ? ORDER BY round').all(runId, 'observer') as {
      round: number;
      status: string;
      detail: string;
    }[];
    expect(participants.map((p) => [p.round, p.status])).toEqual([[1, 'dropped']]);
    expect(participants[0].detail).toContain('task-pickup timeout');
    for (const r of results) expect(r.doneMessage).toBe('run complete');
  }, 30_000);

  it('secagg: a participant lost during training is left out of the masking set and the round commits with the other three', async () => {
    dir = tempDir('dpfed-liveness-');
    const config = runConfig(['--rounds', '2', '--min-clients', '3', '--wait-for', '4', '--aggregation', 'secagg', '--round-timeout', '60', '--phase-timeout', '30']);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    coordinators.push(coordinator);
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    institutions = shiftBanks(address, 3);
    // bank-4 dies in the middle of its first training (its process gone: the connection closes, nothing more is sent)
    let lost!: () => void;
    const died = new Promise<void>((resolve) => (lost = resolve));
    const doomed = makeInstitution({
      id: 'bank-4',
      address,
      pollMs: 2_000,
      learner: new ShiftLearner(0.04, 100, {
        beforeTrain: async () => {
          doomed.client.close();
          lost();
          throw new Error('bank-4 killed during training'); // nothing more leaves it
        },
      }),
    });
    institutions.push(doomed);
    doomed.run = doomed.client.run().catch(() => ({ roundsTrained: 0, roundsEvaluated: 0, declined: null, doneMessage: 'closed' }));
    const t0 = Date.now();
    const results = await within(start(institutions.slice(0, 3)), 25_000, 'two secure rounds');
    await died;
    await coordinator.finished;

    expect(seen.failures).toEqual([]);
    expect(seen.rounds.map((r) => [r.round, r.participants])).toEqual([
      [1, 3],
      [2, 3],
    ]);
    expect(seen.rounds[0].dropped).toEqual(['bank-4']);
    // not the 60 s round timeout: the closed Session stream dropped it at once
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(seen.rounds[0].seconds).toBeLessThan(5);
    expect(seen.rounds[1].dropped).toEqual([]);
    for (const r of results) expect([r.roundsTrained, r.doneMessage]).toEqual([2, 'run complete']);
  }, 30_000);

  it('secagg: an institution restarted after advertising refuses the step it has no state for once, says so, and the round goes on without it', async () => {
    dir = tempDir('dpfed-liveness-');
    const config = runConfig(['--rounds', '1', '--min-clients', '3', '--wait-for', '4', '--aggregation', 'secagg', '--round-timeout', '60', '--phase-timeout', '30', '--task-pickup-timeout', '20']);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    coordinators.push(coordinator);
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    // banks 1–3 train a little longer, so bank-4 has advertised (and restarted) before the key-sharing step
    const slow = () => new Promise<void>((resolve) => setTimeout(resolve, 800));
    institutions = [1, 2, 3].map((k) => makeInstitution({ id: `bank-${k}`, address, learner: new ShiftLearner(0.01 * k, 100, { beforeTrain: slow }), pollMs: 2_000 }));
    institutions.push(makeInstitution({ id: 'bank-4', address, learner: new ShiftLearner(0.04, 100), pollMs: 2_000 }));
    const victim = institutions[3];
    let refusals = 0;
    let refusedAgain = 0;
    let restarted: TestInstitution | undefined;
    victim.client.once('trained', () => {
      // the process dies right after advertising its keys and comes back at once, with its secure-sum state gone
      victim.client.close();
      restarted = makeInstitution({ id: 'bank-4', address, identity: victim.identity, learner: new ShiftLearner(0.04, 100), pollMs: 2_000 });
      restarted.client.on('secagg-refused', () => refusals++);
      restarted.client.on('refused-again', () => refusedAgain++);
      restarted.run = restarted.client.run();
      institutions.push(restarted);
    });
    for (const i of institutions) i.run = i.client.run().catch(() => ({ roundsTrained: 0, roundsEvaluated: 0, declined: null, doneMessage: 'killed' }));
    const t0 = Date.now();
    await within(coordinator.finished, 25_000, 'the run');

    expect(seen.failures).toEqual([]);
    expect(seen.rounds.map((r) => r.participants)).toEqual([3]);
    // not the 20 s pickup timeout nor the 30 s phase timeout: the refusal closed its part of the phase
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(restarted).toBeDefined();
    expect(refusals).toBe(1);
    expect(refusedAgain).toBe(0);
    const bank4 = coordinator.store.participants(coordinator.runId, 1).find((p) => p.institutionId === 'bank-4');
    expect(bank4?.status).not.toBe('reported');
  }, 30_000);

  it('an institution that declines every task does not slow the federation: one decline per round, no re-posts', async () => {
    dir = tempDir('dpfed-liveness-');
    const config = runConfig(['--rounds', '5', '--min-clients', '3', '--wait-for', '4', '--round-timeout', '60', '--phase-timeout', '30']);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    coordinators.push(coordinator);
    const seen = recordRounds(coordinator);
    const decliner = await handWrittenInstitution(coordinator, 'rogue');
    let pulls = 0;
    let declines = 0;
    let stop = false;
    handWritten.push({ close: () => (stop = true) });
    const declining = (async () => {
      while (!stop) {
        const task = await decliner.connection.pullTask(decliner.envelope(), 2_000).catch(() => null);
        pulls++;
        if (!task || task.kind === 'DONE') break;
        if (task.kind === 'WAIT') continue;
        declines++;
        await decliner.connection.decline({
          envelope: { ...decliner.envelope(task.envelope.round), modelVersion: task.envelope.modelVersion },
          reason: 'unsupported',
          projectedEpsilon: 0,
          budgetEpsilon: 0,
          detail: 'this institution declines everything',
        });
      }
    })();
    await decliner.connection.heartbeat(decliner.envelope());
    // a poll that asks not to wait, with nothing to do, is told when to ask again
    const idle = await decliner.connection.pullTask(decliner.envelope(), 0);
    expect([idle.kind, idle.retryAfterMs]).toEqual(['WAIT', 1_000]);
    institutions = shiftBanks(`127.0.0.1:${coordinator.port}`, 3);
    const t0 = Date.now();
    await within(start(institutions), 25_000, 'five rounds');
    await coordinator.finished;
    stop = true;
    await within(declining, 5_000, 'the decliner to stop');

    expect(seen.failures).toEqual([]);
    expect(seen.rounds.map((r) => r.participants)).toEqual([3, 3, 3, 3, 3]);
    expect(Date.now() - t0).toBeLessThan(12_000);
    // it was offered each round's training once and declined it once; nothing was posted to it again
    expect(declines).toBe(5);
    expect(pulls).toBeLessThan(20);
    const declined = coordinator.store.db.prepare("SELECT COUNT(*) AS n FROM participants WHERE run_id = ? AND institution_id = 'rogue' AND status = 'declined'").get(coordinator.runId) as {
      n: number;
    };
    expect(declined.n).toBe(5);
  }, 30_000);

  it('failed rounds back off (1 s, 2 s, 4 s … with jitter), each failure recorded once', async () => {
    dir = tempDir('dpfed-liveness-');
    // two banks and a decliner, three needed: every round fails
    const config = runConfig(['--rounds', '3', '--min-clients', '3', '--round-timeout', '60', '--phase-timeout', '30']);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    coordinators.push(coordinator);
    const failures: { round: number; at: number }[] = [];
    const backoffs: { failures: number; ms: number }[] = [];
    coordinator.machine.on('round-failed', (f: { round: number }) => failures.push({ round: f.round, at: Date.now() }));
    coordinator.machine.on('backoff', (b: { failures: number; ms: number }) => backoffs.push(b));
    const decliner = await handWrittenInstitution(coordinator, 'rogue');
    let declines = 0;
    let stop = false;
    handWritten.push({ close: () => (stop = true) });
    void (async () => {
      while (!stop) {
        const task = await decliner.connection.pullTask(decliner.envelope(), 1_000).catch(() => null);
        if (!task || task.kind === 'DONE') break;
        if (task.kind === 'WAIT') continue;
        declines++;
        await decliner.connection
          .decline({
            envelope: { ...decliner.envelope(task.envelope.round), modelVersion: task.envelope.modelVersion },
            reason: 'unsupported',
            projectedEpsilon: 0,
            budgetEpsilon: 0,
            detail: 'declines everything',
          })
          .catch(() => undefined);
      }
    })();
    await decliner.connection.heartbeat(decliner.envelope());
    institutions = shiftBanks(`127.0.0.1:${coordinator.port}`, 2);
    for (const i of institutions) i.run = i.client.run();
    await new Promise((r) => setTimeout(r, 8_000));

    // without a backoff this is hundreds of failed rounds; with 0.5–1, 1–2, 2–4 s pauses it is at most 4
    expect(failures.length).toBeGreaterThanOrEqual(3);
    expect(failures.length).toBeLessThanOrEqual(5);
    expect(failures.every((f) => f.round === 1)).toBe(true);
    const recorded = coordinator.store.db.prepare('SELECT COUNT(*) AS n FROM round_failures WHERE run_id = ?').get(coordinator.runId) as { n: number };
    expect(recorded.n).toBe(failures.length);
    expect(declines).toBe(failures.length);
    backoffs.forEach((b, k) => {
      const step = Math.min(FAILED_ROUND_BACKOFF.maxMs, FAILED_ROUND_BACKOFF.initialMs * 2 ** k);
      expect(b.failures).toBe(k + 1);
      expect(b.ms).toBeGreaterThanOrEqual(step / 2);
      expect(b.ms).toBeLessThanOrEqual(step);
    });
    const gaps = failures.slice(1).map((f, k) => f.at - failures[k].at);
    expect(gaps[0]).toBeGreaterThanOrEqual(450);
    expect(gaps[gaps.length - 1]).toBeGreaterThan(gaps[0]);
    expect(gaps[1]).toBeGreaterThanOrEqual(950);
  }, 30_000);

  it('a client started before its coordinator joins when it comes up', async () => {
    dir = tempDir('dpfed-liveness-');
    const pki = await testPki();
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const ids = ['bank-1', 'bank-2', 'bank-3'];
    const identities = ids.map(() => generateIdentity());
    const logs: string[] = [];
    const clients = ids.map(
      (id, k) =>
        new FederationClient({
          coordinator: address,
          institutionId: id,
          identity: identities[k],
          learner: new ShiftLearner(0.01, 100),
          declaredExamples: 100,
          pollMs: 2_000,
          tls: pki.material(id),
          log: (line) => logs.push(line),
        }),
    );
    institutions = clients.map((client, k) => ({ id: ids[k], identity: identities[k], client, learner: new ShiftLearner(0.01, 100), logs, run: client.run() }));
    await new Promise((r) => setTimeout(r, 2_000));
    const early = await Promise.race([
      Promise.all(institutions.map((i) => i.run)).then(
        () => 'finished',
        () => 'failed',
      ),
      new Promise((r) => setTimeout(() => r('running'), 10)),
    ]);
    expect(early).toBe('running');

    const coordinator = await startCoordinator({
      dbPath: join(dir, 'c.sqlite'),
      host: '127.0.0.1',
      port,
      config: runConfig(['--rounds', '2', '--min-clients', '3']),
      privacy: coordinatorPrivacy,
      tls: { ...pki.server, requireClientCertificate: true },
      enrol: ids.map((institutionId, k) => ({ institutionId, publicKey: identities[k].publicKey })),
    });
    coordinators.push(coordinator);
    const results = await within(Promise.all(institutions.map((i) => i.run!)), 20_000, 'the clients to finish');
    await coordinator.finished;
    for (const r of results) expect([r.roundsTrained, r.doneMessage]).toEqual([2, 'run complete']);
    expect(logs.some((l) => l.includes('unreachable'))).toBe(true);
  }, 30_000);

  it('the CLI declares --task-pickup-timeout (coordinator) and --connect-timeout (client), lists them in --help and refuses bad values with exit 2', () => {
    const dpfed = (...args: string[]) => spawnSync(process.execPath, [DPFED_BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(dpfed('coordinator', '--help').stdout).toContain('--task-pickup-timeout');
    expect(dpfed('client', '--help').stdout).toContain('--connect-timeout');
    const badPickup = dpfed('coordinator', '--insecure', '--task-pickup-timeout', '0');
    expect(badPickup.status).toBe(2);
    expect(badPickup.stderr).toContain('--task-pickup-timeout');
    const badConnect = dpfed('client', '--insecure', '--coordinator', '127.0.0.1:1', '--institution', 'bank-1', '--data', 'none.csv', '--connect-timeout', '-1');
    expect(badConnect.status).toBe(2);
    expect(badConnect.stderr).toContain('--connect-timeout');
  }, 60_000);
});
