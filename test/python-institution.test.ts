// A Python institution built from proto/dpfed/v1/federation.proto alone (examples/python/), against a real
// coordinator over mutual TLS with enrolment: it completes a 2-round federation beside a Node institution,
// and its deliberately malformed requests (bad signature, replayed nonce, wrong tensor shape) are refused
// with a status naming the field while the coordinator keeps serving. Needs /usr/bin/python3 with grpcio,
// grpc_tools and PyNaCl (Debian: python3-grpcio python3-grpc-tools python3-nacl; .ci/run installs them).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { readSchemaFile, schemaHash } from '@dpfed/proto/data-schema';
import {
  FRAUD_SCHEMA,
  ROOT,
  bankSlices,
  cleanUp,
  enrol,
  recordRounds,
  runConfig,
  start,
  startTestCoordinator,
  tempDir,
  testPki,
  tfjsInstitution,
  within,
  writeBankCsv,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

const PYTHON = '/usr/bin/python3';
const SCRIPT = join(ROOT, 'examples', 'python', 'dpfed_institution.py');

function pythonModulesMissing(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} does not exist`;
  const probe = spawnSync(PYTHON, ['-c', 'import grpc, nacl, grpc_tools'], { encoding: 'utf8' });
  return probe.status === 0 ? null : `${PYTHON} lacks a module: ${(probe.stderr || '').trim().split('\n').pop()}`;
}

const missing = pythonModulesMissing();
if (missing) {
  console.warn(`test/python-institution.test.ts SKIPPED: ${missing}. Install with: apt-get install -y python3-grpcio python3-protobuf python3-grpc-tools python3-nacl python3-numpy`);
}

interface PythonRun {
  code: number | null;
  stderr: string;
  stdout: string;
}

/** Runs the Python institution to its exit (bounded). */
function runPython(args: string[], timeoutMs = 180_000): Promise<PythonRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SCRIPT, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the Python institution did not exit within ${timeoutMs} ms; its log:\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

/** A Python institution's flags: its CSV, the public schema, its identity file (enrolled) and its TLS files. */
async function pythonBank(dir: string, coordinator: Coordinator, id: string, rows: ReturnType<typeof bankSlices>[number]): Promise<string[]> {
  const pki = await testPki();
  await pki.issue(id);
  const identityPath = join(dir, `${id}.identity`);
  const identity = loadOrCreateIdentity(identityPath); // the file `dpfed identity init` writes
  chmodSync(identityPath, 0o600);
  enrol(coordinator, id, identity.publicKey);
  const csv = join(dir, `${id}.csv`);
  writeBankCsv(csv, rows);
  return ['--coordinator', `127.0.0.1:${coordinator.port}`, '--institution', id, '--data', csv, '--schema', FRAUD_SCHEMA, '--identity', identityPath, ...pki.clientFlags(id), '--poll-ms', '2000'];
}

describe.skipIf(missing !== null)('a Python institution built from the .proto', () => {
  const dirs: string[] = [];
  const coordinators: Coordinator[] = [];
  const institutions: TestInstitution[] = [];

  afterAll(async () => {
    await cleanUp({ institutions, coordinators });
    for (const dir of dirs) await cleanUp({ dir });
  });

  it('computes the schema hash the coordinator computes, and names the flag of a bad input file', async () => {
    const run = await runPython(['--print-schema-hash', '--schema', FRAUD_SCHEMA], 30_000);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(schemaHash(readSchemaFile(FRAUD_SCHEMA)));
    // bad input files: exit code 2 and a message naming the flag
    const missingKey = await runPython(
      ['--coordinator', '127.0.0.1:1', '--institution', 'py-bank', '--data', FRAUD_SCHEMA, '--schema', FRAUD_SCHEMA, '--identity', join(ROOT, 'no-such.identity'), '--insecure'],
      30_000,
    );
    expect(missingKey.code, missingKey.stderr).toBe(2);
    expect(missingKey.stderr).toMatch(/--identity: .*no-such\.identity/);
  });

  it('completes a 2-round federation beside a Node institution (mutual TLS, enrolment, privacy off, plain)', async () => {
    const dir = tempDir('dpfed-python-fed-');
    dirs.push(dir);
    const config = runConfig(['--rounds', '2', '--min-clients', '2', '--privacy', 'off', '--aggregation', 'plain', '--model', 'logistic', '--round-timeout', '150', '--phase-timeout', '150']);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, livenessMs: 120_000 });
    coordinators.push(coordinator);
    const record = recordRounds(coordinator);
    const [nodeRows, pythonRows] = bankSlices(2, { rowsPerBank: 3000, seed: 'python-institution' });
    const node = await tfjsInstitution({ id: 'bank-1', address: `127.0.0.1:${coordinator.port}`, data: nodeRows });
    institutions.push(node);
    const python = runPython([...(await pythonBank(dir, coordinator, 'py-bank', pythonRows)), '--declared-examples', '2000']);
    const [results, run] = await within(Promise.all([start([node]), python]), 240_000, 'the federation to finish');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/done \(run complete\): trained 2 rounds, evaluated 2/);
    expect(results[0].roundsTrained).toBe(2);
    await within(coordinator.finished, 30_000, 'the coordinator to finish');
    expect(record.failures).toEqual([]);
    expect(record.rounds.map((r) => r.round)).toEqual([1, 2]);
    for (const round of record.rounds) {
      expect(round.participants).toBe(2);
      expect(round.institutions.map((i) => i.id).sort()).toEqual(['bank-1', 'py-bank']);
      expect(round.auc).toBeGreaterThan(0.7);
    }
    // the Python institution's own exact histograms score the model it helped train
    const mine = record.rounds[1].institutions.find((i) => i.id === 'py-bank')!;
    expect(mine.examples).toBeGreaterThan(300);
    expect(mine.auc).toBeGreaterThan(0.7);
  }, 300_000);

  it('is refused cleanly, naming the field, for a bad signature, a replayed nonce and a wrong tensor shape; the coordinator keeps serving', async () => {
    const dir = tempDir('dpfed-python-bad-');
    dirs.push(dir);
    const config = runConfig(['--rounds', '1', '--min-clients', '1', '--privacy', 'off', '--aggregation', 'plain', '--model', 'logistic', '--round-timeout', '60', '--phase-timeout', '60']);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, livenessMs: 120_000 });
    coordinators.push(coordinator);
    const [rows] = bankSlices(1, { rowsPerBank: 1500, seed: 'python-bad' });
    const flags = await pythonBank(dir, coordinator, 'py-bank', rows);

    const badSignature = await runPython([...flags, '--misbehave', 'bad-signature']);
    expect(badSignature.code, badSignature.stderr).toBe(3);
    expect(badSignature.stderr).toMatch(/refused: Register refused: UNAUTHENTICATED: signature: does not verify/);

    const replayed = await runPython([...flags, '--misbehave', 'replayed-nonce']);
    expect(replayed.code, replayed.stderr).toBe(3);
    expect(replayed.stderr).toMatch(/refused: Register \(the same request again\) refused: UNAUTHENTICATED: nonce: /);

    const wrongShape = await runPython([...flags, '--misbehave', 'wrong-shape']);
    expect(wrongShape.code, wrongShape.stderr).toBe(3);
    expect(wrongShape.stderr).toMatch(/refused: PushResult refused: INVALID_ARGUMENT: tensor\.shape: "dense_0\/kernel" must be \[30,1\], got \[1,30\]/);

    // the coordinator kept serving: the same institution, well-formed this time, completes the run
    const good = await runPython(flags);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stderr).toMatch(/trained 1 rounds/);
    await within(coordinator.finished, 30_000, 'the coordinator to finish');
  }, 300_000);
});
