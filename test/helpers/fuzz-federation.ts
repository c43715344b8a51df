// The federation the fuzz tests run against: a real coordinator (mutual TLS, SQLite in a temp dir), a
// fuzzing institution "attacker" (enrolled, registered, with a raw client and its valid envelope in
// `ctx`), and two good institutions training beside it (liveness). The attacker declines for its budget
// right after registering, so it is never sampled and the good rounds never wait for it; its session
// still authenticates, so fuzzed messages with its envelope reach the round's own checks.
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { signedRegistration } from '@dpfed/client/registration-request';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import type { RunConfig } from '@dpfed/coordinator/run-config';
import { generateIdentity } from '@dpfed/privacy/identity';
import type { ChallengeResponse, RegisterRequest, RegisterResponse } from '@dpfed/proto/wire';
import { ShiftLearner, cleanUp, enrol, makeInstitution, recordRounds, runConfig, start, startTestCoordinator, tempDir, testCredentials, type TestInstitution } from './federation-fixture.ts';
import { resolve, type FuzzContext } from './fuzz-messages.ts';
import { RawFederationClient, decodeResponse, encodeRequest } from './raw-grpc-client.ts';

/** Every fuzzed call's deadline: a call still unanswered then is a hang. */
export const FUZZ_DEADLINE_MS = 8_000;

export interface FuzzFederation {
  coordinator: Coordinator;
  /** The run's configuration (logistic model, no privacy, plain aggregation). */
  config: RunConfig;
  raw: RawFederationClient;
  /** The attacker's valid envelope fields; round and model version follow the coordinator (refresh()). */
  ctx: FuzzContext;
  /** Round summaries and failures since the federation started. */
  rounds: ReturnType<typeof recordRounds>;
  /** Errors that reached process 'uncaughtException' while the federation ran. */
  uncaught: unknown[];
  refresh(): void;
  challenge(): Promise<ChallengeResponse>;
  /** A registration of the attacker signed over `challenge`. */
  signedRegisterRequest(challenge: ChallengeResponse): RegisterRequest;
  /** Follows a registration the fuzzer got accepted (its session replaces the old one). */
  registered(response: Buffer): void;
  /** Null when a valid Heartbeat (separate call) and a valid Challenge are answered; else what failed. */
  stillServing(): Promise<string | null>;
  close(): Promise<void>;
}

export async function startFuzzFederation(name: string): Promise<FuzzFederation> {
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on('uncaughtException', onUncaught);
  const dir = tempDir(`dpfed-${name}-`);
  // The fuzzer, the coordinator and the good institutions share one event loop: the timeouts leave room
  // for a loop busy with fuzzed traffic on a loaded machine, so a failed round means the fuzzing broke it.
  const config = runConfig(['--rounds', '100000', '--min-clients', '2', '--model', 'logistic', '--task-pickup-timeout', '10', '--round-timeout', '30', '--phase-timeout', '15']);
  const coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, livenessMs: 60_000 });
  const rounds = recordRounds(coordinator);
  const address = `127.0.0.1:${coordinator.port}`;
  const attacker = generateIdentity();
  enrol(coordinator, 'attacker', attacker.publicKey);
  const raw = new RawFederationClient(address, testCredentials('attacker'));
  const ctx: FuzzContext = { runId: coordinator.runId, institutionId: 'attacker', session: new Uint8Array(16), round: 0, modelVersion: 0 };
  let institutions: TestInstitution[] = [];

  /**
   * A valid call that must succeed while the coordinator serves. The fuzzing connection carries thousands
   * of hostile calls at once; when its channel is reconnecting (the call never left: "Waiting for LB
   * pick"), the probe asks again once over a fresh connection, so what is judged is the coordinator, not
   * the client's channel state.
   */
  const probe = async (method: 'Challenge' | 'Heartbeat', bytes: Buffer) => {
    const out = await raw.unary(method, bytes, FUZZ_DEADLINE_MS);
    if (out.code === grpc.status.OK || !/LB pick|UNAVAILABLE|No connection/i.test(`${grpc.status[out.code]} ${out.details}`)) return out;
    const fresh = new RawFederationClient(address, testCredentials('attacker'));
    try {
      return await fresh.unary(method, bytes, FUZZ_DEADLINE_MS);
    } finally {
      fresh.close();
    }
  };

  const f: FuzzFederation = {
    coordinator,
    config,
    raw,
    ctx,
    rounds,
    uncaught,
    refresh() {
      const status = coordinator.machine.status;
      ctx.round = status.round;
      ctx.modelVersion = status.modelVersion;
    },
    async challenge() {
      const out = await probe('Challenge', encodeRequest('Challenge', { institutionId: 'attacker' }));
      if (out.code !== grpc.status.OK) throw new Error(`Challenge refused: ${grpc.status[out.code]} ${out.details}`);
      return decodeResponse<ChallengeResponse>('Challenge', out.responses[0]);
    },
    signedRegisterRequest(challenge) {
      return signedRegistration(challenge, { institutionId: 'attacker', identity: attacker, budget: null, clientVersion: 'fuzz' });
    },
    registered(response) {
      ctx.session = decodeResponse<RegisterResponse>('Register', response).session;
    },
    async stillServing() {
      f.refresh();
      const heartbeat = await probe('Heartbeat', encodeRequest('Heartbeat', { envelope: resolve(ctx, { $valid: 'none' }) }));
      if (heartbeat.code !== grpc.status.OK) return `a valid Heartbeat failed: ${grpc.status[heartbeat.code]} ${heartbeat.details}`;
      const challenge = await probe('Challenge', encodeRequest('Challenge', { institutionId: 'attacker' }));
      if (challenge.code !== grpc.status.OK) return `a valid Challenge failed: ${grpc.status[challenge.code]} ${challenge.details}`;
      return null;
    },
    async close() {
      process.off('uncaughtException', onUncaught);
      raw.close();
      await cleanUp({ institutions, coordinators: [coordinator], dir });
    },
  };

  const registration = await raw.unary('Register', encodeRequest('Register', f.signedRegisterRequest(await f.challenge())), FUZZ_DEADLINE_MS);
  if (registration.code !== grpc.status.OK) throw new Error(`Register refused: ${grpc.status[registration.code]} ${registration.details}`);
  f.registered(registration.responses[0]);
  const declined = await raw.unary('Decline', encodeRequest('Decline', { envelope: resolve(ctx, { $valid: 'none' }), reason: 'budget', projectedEpsilon: 2, budgetEpsilon: 1 }), FUZZ_DEADLINE_MS);
  if (declined.code !== grpc.status.OK) throw new Error(`Decline refused: ${grpc.status[declined.code]} ${declined.details}`);
  institutions = [0.5, -0.25].map((shift, k) => makeInstitution({ id: `good-${k + 1}`, address, learner: new ShiftLearner(shift, 100), pollMs: 200 }));
  start(institutions).catch(() => undefined);
  return f;
}
