// The same seeded federation over the in-memory transport and over gRPC (mutual TLS on 127.0.0.1): the
// coordinator core, strategy, secure aggregation and SDK are the same code, so with privacy off (no noise)
// the committed models and AUCs are bit-identical. Also: a refusal crosses the in-memory link with the code
// and typed reason a gRPC call carries.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { startInMemoryCoordinator } from '@dpfed/coordinator/in-memory-coordinator';
import { connectionCredentials, CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import { FederationError } from '@dpfed/proto/federation-error';
import { generateIdentity } from '@dpfed/privacy/identity';
import { addressOf, bankSlices, cleanUp, runConfig, start, startTestCoordinator, tempDir, tfjsInstitution, within, type TestInstitution } from './helpers/federation-fixture.ts';

const dirs: string[] = [];
const coordinators: Coordinator[] = [];
let institutions: TestInstitution[] = [];

afterEach(async () => {
  await cleanUp({ institutions, coordinators });
  institutions = [];
  coordinators.length = 0;
  for (const dir of dirs.splice(0)) await cleanUp({ dir });
});

interface Outcome {
  models: string[];
  aucs: (number | null)[];
}

async function federation(transport: 'memory' | 'grpc', aggregation: 'plain' | 'secagg'): Promise<Outcome> {
  const dir = tempDir(`dpfed-${transport}-`);
  dirs.push(dir);
  const config = runConfig(['--rounds', '3', '--min-clients', '3', '--privacy', 'off', '--aggregation', aggregation, '--seed', '11', '--round-timeout', '60', '--phase-timeout', '60']);
  const coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, inMemory: transport === 'memory' });
  coordinators.push(coordinator);
  const slices = bankSlices(3, { rowsPerBank: 900, seed: 'same-banks' });
  const banks: TestInstitution[] = [];
  for (let k = 0; k < 3; k++) banks.push(await tfjsInstitution({ id: `bank-${k + 1}`, address: addressOf(coordinator), data: slices[k], seed: `bank-${k + 1}` }));
  institutions.push(...banks);
  await within(start(banks), 120_000, `the ${transport} federation to finish`);
  await coordinator.finished;
  const { store, runId } = coordinator;
  const rounds = store.rounds(runId);
  expect(rounds.map((r) => r.participants)).toEqual([3, 3, 3]);
  return {
    models: rounds.map((r) => createHash('sha256').update(store.model(runId, r.round)!.parameters).digest('hex')),
    aucs: rounds.map((r) => r.auc),
  };
}

describe('in-memory transport', () => {
  for (const aggregation of ['plain', 'secagg'] as const) {
    it(`commits bit-identical models and AUCs to gRPC (privacy off, ${aggregation})`, async () => {
      const memory = await federation('memory', aggregation);
      const grpc = await federation('grpc', aggregation);
      expect(memory.aucs.every((a) => typeof a === 'number')).toBe(true);
      expect(memory.aucs).toEqual(grpc.aucs);
      expect(memory.models).toEqual(grpc.models);
    });
  }

  it('a refusal arrives as a FederationError with its gRPC code and typed reason', async () => {
    const dir = tempDir('dpfed-memory-refusal-');
    dirs.push(dir);
    const coordinator = await startInMemoryCoordinator({ dbPath: join(dir, 'c.sqlite'), config: runConfig(['--rounds', '1', '--privacy', 'off', '--aggregation', 'plain']) });
    coordinators.push(coordinator);
    const link = coordinator.link();
    const envelope = { runId: coordinator.runId, institutionId: 'nobody', session: Buffer.alloc(16), round: 0, modelVersion: 0 };
    const refused = await link.heartbeat(envelope).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FederationError);
    expect((refused as FederationError).code).toBe(status.INVALID_ARGUMENT);
    expect((refused as FederationError).reason).toBe('NOT_REGISTERED');
    expect((refused as FederationError).details).toMatch(/envelope\.institution_id/);
    // an id the operator never enrolled never sees a nonce, as at the gRPC edge
    const challenge = await link.challenge({ institutionId: 'stranger' }).catch((e: unknown) => e);
    expect(challenge).toBeInstanceOf(FederationError);
    expect((challenge as FederationError).code).toBe(status.PERMISSION_DENIED);
    expect((challenge as FederationError).reason).toBe('NOT_ENROLLED');
    coordinator.enrolment.add('stranger', generateIdentity().publicKey);
    expect((await link.challenge({ institutionId: 'stranger' })).nonce.length).toBeGreaterThan(0);
    link.close();
  });

  it('over gRPC the same refusals carry the same code and reason (Session stream and separate call)', async () => {
    const dir = tempDir('dpfed-grpc-refusal-');
    dirs.push(dir);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config: runConfig(['--rounds', '1', '--privacy', 'off', '--aggregation', 'plain']), insecure: true });
    coordinators.push(coordinator);
    const connection = new CoordinatorConnection(addressOf(coordinator), connectionCredentials({ insecure: true }));
    try {
      const envelope = { runId: coordinator.runId, institutionId: 'nobody', session: Buffer.alloc(16), round: 0, modelVersion: 0 };
      const refused = (await connection.heartbeat(envelope).catch((e: unknown) => e)) as FederationError;
      expect(refused).toBeInstanceOf(FederationError);
      expect([refused.code, refused.reason]).toEqual([status.INVALID_ARGUMENT, 'NOT_REGISTERED']);
      const challenge = (await connection.challenge({ institutionId: 'stranger' }).catch((e: unknown) => e)) as FederationError;
      expect(challenge).toBeInstanceOf(FederationError);
      expect([challenge.code, challenge.reason]).toEqual([status.PERMISSION_DENIED, 'NOT_ENROLLED']);
    } finally {
      connection.close();
    }
  });
});
