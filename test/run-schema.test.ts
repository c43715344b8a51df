// The run's public data schema at registration, over real gRPC (mutual TLS): the coordinator stores the
// schema it was started with, sends it in every ChallengeResponse, derives the model's inputs from it and
// refuses a Register whose signed schema_hash is another; the SDK compares its own schema first and refuses
// locally, naming the differing columns, so a mismatching institution is never registered nor sampled.
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import { SchemaMismatchError } from '@dpfed/client/federation-client';
import { signedRegistration } from '@dpfed/client/registration-request';
import { TfjsLearner } from '@dpfed/client/tfjs-learner';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { exportModel } from '@dpfed/coordinator/model-export';
import type { RunConfig } from '@dpfed/coordinator/run-config';
import { generateIdentity } from '@dpfed/privacy/identity';
import { parseSchema, schemaHash, type DataSchema } from '@dpfed/proto/data-schema';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  bankSlices,
  cleanUp,
  DPFED_BIN,
  enrol,
  FRAUD_SCHEMA,
  writeBankCsv,
  fraudSchemaOf,
  makeInstitution,
  prepareBank,
  recordRounds,
  runConfig,
  start,
  startTestCoordinator,
  tempDir,
  testCredentials,
  tfjsInstitution,
  wasmTf,
  within,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

/** The bundled schema with column `name`'s upper bound changed: the same columns, other preprocessing. */
function withBound(schema: DataSchema, name: string, max: number): DataSchema {
  return parseSchema({ ...schema, columns: schema.columns.map((c) => (c.name === name && c.type === 'number' ? { ...c, bounds: [c.bounds[0], max] } : c)) });
}

describe('run schema (dpfed coordinator --schema)', () => {
  const dir = tempDir();
  const institutions: TestInstitution[] = [];
  let coordinator: Coordinator | undefined;
  afterAll(() => cleanUp({ institutions, coordinators: [coordinator], dir }));

  it('derives the model inputs from --schema and refuses a --features that disagrees', () => {
    const config = runConfig(['--schema', FRAUD_SCHEMA]);
    expect(config.modelSpec.inputDim).toBe(30);
    expect(schemaHash(config.schema!)).toBe(schemaHash(fraudSchemaOf()));
    expect(() => runConfig(['--schema', FRAUD_SCHEMA, '--features', '12'])).toThrow(/^--features: 12 disagrees with --schema .*30 feature columns/);
    expect(runConfig(['--schema', FRAUD_SCHEMA, '--features', '30']).modelSpec.inputDim).toBe(30);
    expect(() => runConfig(['--schema', join(dir, 'absent.json')])).toThrow(/^--schema: cannot read/);
  });

  it('refuses at registration an institution whose schema differs (naming the columns); the matching ones run, and export ships the stored schema', async () => {
    const config = runConfig(['--schema', FRAUD_SCHEMA, '--rounds', '1', '--min-clients', '2', '--local-steps', '3']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coord.sqlite'), config });
    // the run keeps its schema in the runs table's config
    const stored = JSON.parse((coordinator.store.db.prepare('SELECT config_json FROM runs WHERE id = ?').get(coordinator.runId) as { config_json: string }).config_json) as RunConfig;
    expect(schemaHash(stored.schema!)).toBe(schemaHash(fraudSchemaOf()));
    const address = `127.0.0.1:${coordinator.port}`;
    const { rounds } = recordRounds(coordinator);

    // bank-3 preprocesses with another bound on V1 and Amount: it refuses locally before Register
    const slices = bankSlices(3, { rowsPerBank: 400 });
    const tf = await wasmTf();
    const { train, validation } = await prepareBank(slices[2]);
    const other = withBound(withBound(fraudSchemaOf(), 'V1', 5), 'Amount', 100);
    const mismatching = makeInstitution({ id: 'bank-3', address, learner: new TfjsLearner(tf, train, validation, { schema: other }) });
    institutions.push(mismatching);
    const refused = await within(
      mismatching.client.run().then(
        () => null,
        (e: unknown) => e,
      ),
      20_000,
      'bank-3 to refuse',
    );
    expect(refused).toBeInstanceOf(SchemaMismatchError);
    expect((refused as Error).message).toMatch(/column 2 "V1": expected number, bounds \[-\d+(\.\d+)?, \d+(\.\d+)?\].*got number, bounds \[-\d+(\.\d+)?, 5\]/);
    expect((refused as Error).message).toMatch(/"Amount"/);
    // it never registered, so it can never be sampled
    expect(coordinator.store.institutionKey('bank-3')).toBeFalsy();

    for (let i = 0; i < 2; i++) institutions.push(await tfjsInstitution({ id: `bank-${i + 1}`, address, data: slices[i] }));
    await within(start(institutions.slice(1)), 90_000, 'the run');
    expect(rounds).toHaveLength(1);
    expect(rounds[0].participants).toBe(2);

    // model export without a schema ships the run's
    const exported = await exportModel({ db: coordinator.store.db, runId: coordinator.runId, outDir: join(dir, 'model'), tf });
    const preprocessing = JSON.parse(readFileSync(join(dir, 'model', 'preprocessing.json'), 'utf8')) as { schemaHash: string };
    expect(preprocessing.schemaHash).toBe(schemaHash(fraudSchemaOf()));
    expect(exported.card.round).toBe(1);
  });

  it("sends the schema with the challenge and refuses a signed schema_hash that is not the run's (FAILED_PRECONDITION)", async () => {
    const config = runConfig(['--schema', FRAUD_SCHEMA, '--rounds', '1', '--min-clients', '2']);
    const second = await startTestCoordinator({ dbPath: join(dir, 'coord2.sqlite'), config });
    try {
      const identity = generateIdentity();
      enrol(second, 'bank-4', identity.publicKey);
      const conn = new CoordinatorConnection(`127.0.0.1:${second.port}`, testCredentials('bank-4'));
      try {
        const challenge = await conn.challenge({ institutionId: 'bank-4' });
        expect(schemaHash(parseSchema(JSON.parse(challenge.schemaJson)))).toBe(schemaHash(fraudSchemaOf()));
        const wrong = Buffer.from(schemaHash(withBound(fraudSchemaOf(), 'V1', 5)), 'hex');
        const error = await conn.register(signedRegistration(challenge, { institutionId: 'bank-4', identity, budget: null, schemaHash: wrong })).then(
          () => null,
          (e: grpc.ServiceError) => e,
        );
        expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
        expect(error?.details).toMatch(
          /^schema_hash: institution "bank-4" declared [0-9a-f]{64}; this run's data schema \(30 feature columns, label "label"\) has [0-9a-f]{64}: compare with `dpfed schema hash/,
        );
        const none = await conn.challenge({ institutionId: 'bank-4' });
        const noSchema = await conn.register(signedRegistration(none, { institutionId: 'bank-4', identity, budget: null })).then(
          () => null,
          (e: grpc.ServiceError) => e,
        );
        expect(noSchema?.details).toMatch(/^schema_hash: institution "bank-4" declared no data schema/);
        expect(second.store.institutionKey('bank-4')).toBeFalsy();
        // the matching hash registers
        const right = await conn.challenge({ institutionId: 'bank-4' });
        const ok = await conn.register(signedRegistration(right, { institutionId: 'bank-4', identity, budget: null, schemaHash: Buffer.from(schemaHash(fraudSchemaOf()), 'hex') }));
        expect(ok.session).toHaveLength(16);
      } finally {
        conn.close();
      }
    } finally {
      await second.close();
    }
  });

  it('dpfed client with another --schema exits 2 naming the columns, before registering; dpfed coordinator --features that disagrees exits 2', async () => {
    const run = (...args: string[]) =>
      new Promise<{ code: number; stderr: string; stdout: string }>((resolve) => {
        execFile(process.execPath, [DPFED_BIN, ...args], { timeout: 60_000 }, (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      });
    const features = await run('coordinator', '--insecure', '--port', '0', '--db', join(dir, 'f.sqlite'), '--schema', FRAUD_SCHEMA, '--features', '12');
    expect(features.code).toBe(2);
    expect(features.stderr).toMatch(/--features: 12 disagrees with --schema/);

    const csv = join(dir, 'bank-cli.csv');
    writeBankCsv(csv, bankSlices(1, { rowsPerBank: 300, seed: 'run-schema-cli' })[0]);
    const otherSchema = join(dir, 'other.schema.json');
    writeFileSync(otherSchema, JSON.stringify(withBound(fraudSchemaOf(), 'V1', 5)));
    const identity = join(dir, 'bank-cli.identity');
    const { publicKey } = JSON.parse((await run('identity', 'init', '--identity', identity, '--json')).stdout) as { publicKey: string };
    const enrolFile = join(dir, 'enrol-cli.json');
    writeFileSync(enrolFile, JSON.stringify([{ institution: 'bank-cli', publicKey }]));
    const coordinatorProcess = spawn(
      process.execPath,
      [
        DPFED_BIN,
        'coordinator',
        '--insecure',
        '--port',
        '0',
        '--db',
        join(dir, 'cli.sqlite'),
        '--json',
        '--rounds',
        '1',
        '--min-clients',
        '1',
        '--privacy',
        'off',
        '--aggregation',
        'plain',
        '--schema',
        FRAUD_SCHEMA,
        '--enrol-file',
        enrolFile,
        '--key-dir',
        join(dir, 'keys'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const port = await new Promise<number>((resolve, reject) => {
        createInterface({ input: coordinatorProcess.stdout! }).on('line', (line) => {
          const event = JSON.parse(line) as { event: string; port: number };
          if (event.event === 'listening') resolve(event.port);
        });
        coordinatorProcess.on('exit', (code) => reject(new Error(`coordinator exited ${code}`)));
      });
      const client = await run(
        'client',
        '--insecure',
        '--coordinator',
        `127.0.0.1:${port}`,
        '--institution',
        'bank-cli',
        '--data',
        csv,
        '--schema',
        otherSchema,
        '--identity',
        identity,
        '--ledger',
        join(dir, 'bank-cli.ledger.sqlite'),
      );
      expect(client.code).toBe(2);
      expect(client.stderr).toMatch(/dpfed client: --schema: register: this institution's data schema differs from the run's: column 2 "V1": expected number, bounds \[-10, 10\]/);
    } finally {
      coordinatorProcess.kill('SIGTERM');
    }
  }, 90_000);
});
