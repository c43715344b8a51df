// The .proto is the whole contract: the byte layouts its comments state are the bytes the code signs, the
// model spec and TaskConfig fields it documents are the ones the code uses, and the task configurations a
// real coordinator sends satisfy proto/dpfed/v1/task-config.schema.json (and every field they carry is
// documented in the .proto). Each layout is rebuilt here from the comment text alone and compared with the
// implementation's bytes.
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluationDataEvaluator } from 'dpfed/evaluation-data';
import { CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import { signedRegistration } from '@dpfed/client/registration-request';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { ckksKeyBinding } from '@dpfed/privacy/ckks-key-binding';
import { generateIdentity } from '@dpfed/privacy/identity';
import { canonicalEventBytes, type LedgerEvent } from '@dpfed/privacy/ledger-event';
import { receiptBytes } from '@dpfed/privacy/receipts';
import { expandMask } from '@dpfed/privacy/mask-prg';
import { secaggTranscript } from '@dpfed/privacy/secagg-keys';
import { FIELD_PRIME, SHARE_VALUE_BYTES } from '@dpfed/privacy/shamir';
import { TaskConfig as TaskConfigCodec } from '@dpfed/proto/generated/dpfed/v1/federation';
import { modelSpecFromMessage, parameterShapes } from '@dpfed/proto/model-spec';
import { registrationDeclaration, type RegistrationDeclaration } from '@dpfed/proto/registration';
import { parseTaskConfig, type TaskConfig } from '@dpfed/proto/task-config';
import { taskConfigMessage } from '@dpfed/proto/task-config-message';
import type { Envelope, TaskConfigMsg } from '@dpfed/proto/wire';
import { FRAUD_CSV, FRAUD_SCHEMA, ROOT, cleanUp, enrol, runConfig, startTestCoordinator, tempDir, testCredentials, within } from './helpers/federation-fixture.ts';

const PROTO = readFileSync(join(ROOT, 'proto', 'dpfed', 'v1', 'federation.proto'), 'utf8');

/** The comment text between two markers of the .proto, comment prefixes removed. */
function commentBetween(start: string, end: string): string {
  const from = PROTO.indexOf(start);
  const to = PROTO.indexOf(end, from + start.length);
  expect(from, `"${start}" in federation.proto`).toBeGreaterThanOrEqual(0);
  expect(to, `"${end}" after "${start}" in federation.proto`).toBeGreaterThan(from);
  return PROTO.slice(from, to)
    .split('\n')
    .map((line) => line.replace(/^\s*\/\/ ?/, ''))
    .join('\n');
}

type Field = { tag: string; name: string };

/** The encoding the .proto states under RegisterRequest.signature, written from the comment's rules. */
function encodeAsDocumented(context: string, fields: Field[], value: (name: string) => string | number | Uint8Array): Uint8Array {
  const parts: Buffer[] = [Buffer.from(context, 'utf8'), Buffer.from([0])];
  for (const { tag, name } of fields) {
    const v = value(name);
    const lengthPrefixed = (bytes: Buffer) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      parts.push(Buffer.from(tag, 'latin1'), length, bytes);
    };
    if (tag === 's') lengthPrefixed(Buffer.from(v as string, 'utf8'));
    else if (tag === 'b') lengthPrefixed(Buffer.from(v as Uint8Array));
    else if (tag === 'f') {
      const out = Buffer.alloc(8);
      out.writeDoubleBE((v as number) === 0 ? 0 : (v as number));
      parts.push(Buffer.from('f', 'latin1'), out);
    } else if (tag === 'u') {
      const out = Buffer.alloc(8);
      out.writeBigUInt64BE(BigInt(v as number));
      parts.push(Buffer.from('u', 'latin1'), out);
    } else throw new Error(`unknown tag ${tag} in the .proto`);
  }
  return new Uint8Array(Buffer.concat(parts));
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('federation.proto states the bytes the code signs', () => {
  it('RegisterRequest.signature: the declaration fields, tags and order match proto/registration.ts', () => {
    const text = commentBetween('message RegisterRequest {', 'bytes signature = 7;');
    const context = /context string "([^"]+)" followed by/.exec(text)?.[1];
    expect(context).toBe('dpfed.v1/register');
    const fields = [...text.matchAll(/^\s+(\d+) '([sbfu])' (\S+)/gm)].map((m) => ({ index: Number(m[1]), tag: m[2], name: m[3] }));
    expect(fields.map((f) => f.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const d: RegistrationDeclaration = {
      nonce: randomBytes(32),
      institutionId: 'bank-é',
      identityPublicKey: generateIdentity().publicKey,
      protocolVersion: 1,
      budget: { epsilon: 2.5, delta: 1e-6 },
      declaredExamples: 1234,
      schemaHash: randomBytes(32),
      ledgerHeadSeq: 7,
      ledgerHeadHash: randomBytes(32),
      receiptSeq: 5,
      anchorHash: randomBytes(32),
    };
    const values: Record<string, string | number | Uint8Array> = {
      nonce: d.nonce,
      institution_id: d.institutionId,
      identity_public_key: d.identityPublicKey,
      protocol_version: d.protocolVersion,
      'budget.epsilon': d.budget!.epsilon,
      'budget.delta': d.budget!.delta,
      declared_examples: d.declaredExamples,
      schema_hash: d.schemaHash,
      'ledger_head.seq': d.ledgerHeadSeq,
      'ledger_head.hash': d.ledgerHeadHash,
      receipt_seq: d.receiptSeq,
      anchor_hash: d.anchorHash,
    };
    const documented = encodeAsDocumented(context!, fields, (name) => {
      expect(values, `declaration field "${name}" of the .proto`).toHaveProperty([name]);
      return values[name];
    });
    expect(hex(documented)).toBe(hex(registrationDeclaration(d)));
    // the worked example's first bytes
    const example = /Example, institution "a", protocol 1: ([0-9a-f ]+)\(/.exec(text)![1].trim();
    expect(example.replace(/ /g, '')).toBe(hex(Buffer.from('dpfed.v1/register\0', 'utf8')));
  });

  it('PrivacyEvent.signature: the event fields, tags and order match privacy/ledger-event.ts', () => {
    const text = commentBetween('// A mechanism event, as the institution accounts it.', 'message PrivacyEvent {');
    const context = /context "([^"]+)" and the fields, in this order:/.exec(text)?.[1];
    expect(context).toBe('dpfed.v1/privacy-event');
    const list = text.slice(text.indexOf('in this order:') + 'in this order:'.length, text.indexOf('(time as'));
    const fields = [...list.matchAll(/'([sbfu])' (\w+)/g)].map((m) => ({ tag: m[1], name: m[2] }));
    expect(fields).toHaveLength(11);
    const e: LedgerEvent = {
      institutionId: 'bank-1',
      runId: 'run-1',
      round: 3,
      mode: 'evaluation',
      sampleRate: 1,
      noiseMultiplier: 21.5,
      steps: 1,
      clipNorm: 1,
      delta: 1e-5,
      modelVersion: 3,
      time: '2026-05-01T12:00:00.000Z',
    };
    const values: Record<string, string | number> = {
      institution_id: e.institutionId,
      run_id: e.runId,
      round: e.round,
      mode: e.mode,
      sample_rate: e.sampleRate,
      noise_multiplier: e.noiseMultiplier,
      steps: e.steps,
      clip_norm: e.clipNorm,
      delta: e.delta,
      model_version: e.modelVersion,
      time: e.time,
    };
    // the fields are PrivacyEvent's own, in the order of its field numbers (signature excluded)
    const message = commentBetween('message PrivacyEvent {', '}');
    const declared = [...message.matchAll(/^\s*\w+ (\w+) = (\d+);/gm)].map((m) => m[1]).filter((n) => n !== 'signature');
    expect(fields.map((f) => f.name)).toEqual(declared);
    expect(hex(encodeAsDocumented(context!, fields, (name) => values[name]))).toBe(hex(canonicalEventBytes(e)));
  });

  it('LedgerHead.signature, the secure-aggregation transcript and the CKKS key binding match the code', () => {
    const head = commentBetween('// A ledger head signed by the key', 'message LedgerHead {');
    expect(head).toContain(`"dpfed.v1/ledger-head" 0x00 | 'u' uint64-BE(seq) | 'b' uint32-BE(len(hash)) hash`);
    const hash = randomBytes(32);
    expect(
      hex(
        encodeAsDocumented(
          'dpfed.v1/ledger-head',
          [
            { tag: 'u', name: 'seq' },
            { tag: 'b', name: 'hash' },
          ],
          (n) => (n === 'seq' ? 42 : hash),
        ),
      ),
    ).toBe(hex(receiptBytes(42, hash)));

    // secagg transcript: each part as uint32-BE length + bytes; label, run id, round (4 bytes), collection, then the parts
    const secagg = commentBetween('// ---------- Secure aggregation', 'message SignedKeys {');
    expect(secagg).toContain('SignedKeys.signature: Ed25519 over transcript("dpfed.v1/secagg/advertise", institution_id, index,');
    const [enc, mask] = [randomBytes(32), randomBytes(32)];
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const documented = Buffer.concat(
      ['dpfed.v1/secagg/advertise', 'run-1', u32(4), 'update', 'bank-2', u32(2), enc, mask].flatMap((part) => {
        const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
        return [u32(bytes.length), bytes];
      }),
    );
    expect(hex(documented)).toBe(hex(secaggTranscript('dpfed.v1/secagg/advertise', { runId: 'run-1', round: 4, collection: 'update' }, ['bank-2', 2, enc, mask])));
    expect(secagg).toContain('the ciphertext is 114 bytes');

    const ckks = commentBetween('message CkksPublicKey {', '}');
    expect(ckks).toContain('"dpfed.v1/ckks-public-key" 0x00 run_id 0x00');
    const key = randomBytes(100);
    const digest = createHash('sha256').update(key).digest('hex');
    expect(Buffer.from(ckksKeyBinding('run-1', 'bank-1', key)).toString('utf8')).toBe(`dpfed.v1/ckks-public-key\0run-1\0bank-1\0${digest}`);
  });

  it('the SecAgg primitives: Shamir field and share size, mask expansion', () => {
    const text = commentBetween('// Primitives (byte-exact):', '// Transcripts:');
    expect(text).toContain('GF(p), p = 2^256 + 297');
    expect(FIELD_PRIME).toBe(2n ** 256n + 297n);
    expect(text).toContain('as 33 big-endian bytes');
    expect(SHARE_VALUE_BYTES).toBe(33);
    expect(text).toMatch(/AES-256-CTR keyed by the seed, IV 16\s+zero bytes/);
    const seed = randomBytes(32);
    const stream = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16)).update(Buffer.alloc(5 * 4));
    expect([...expandMask(seed, 5)]).toEqual([0, 1, 2, 3, 4].map((i) => stream.readUInt32LE(4 * i)));
  });

  it('the model spec: parameter names, shapes and order as documented', () => {
    const text = commentBetween('// The model architecture (proto/model-spec.ts).', 'message ModelSpec {');
    expect(text).toContain('"dense_<i>/kernel" of shape [in, out]');
    expect(text).toContain('dense_0/kernel, dense_0/bias, dense_1/kernel');
    expect(parameterShapes({ kind: 'logistic', inputDim: 30, hidden: [] })).toEqual([
      { name: 'dense_0/kernel', shape: [30, 1] },
      { name: 'dense_0/bias', shape: [1] },
    ]);
    expect(text).toContain('{kind: MODEL_KIND_LOGISTIC, input_dim: 30} has dense_0/kernel [30,1] and dense_0/bias [1]');
    expect(parameterShapes({ kind: 'mlp', inputDim: 4, hidden: [{ units: 3, activation: 'relu' }] }).map((p) => `${p.name}[${p.shape}]`)).toEqual([
      'dense_0/kernel[4,3]',
      'dense_0/bias[3]',
      'dense_1/kernel[3,1]',
      'dense_1/bias[1]',
    ]);
  });
});

/** The fields of `message Name { ... }` in the .proto, each with the comment on its line or the lines above it. */
function protoFields(name: string): { field: string; comment: string }[] {
  const start = PROTO.indexOf(`\nmessage ${name} {`);
  expect(start, `message ${name} in federation.proto`).toBeGreaterThanOrEqual(0);
  const lines = PROTO.slice(start + 1, PROTO.indexOf('\n}', start))
    .split('\n')
    .slice(1);
  const fields: { field: string; comment: string }[] = [];
  let above: string[] = [];
  for (const line of lines) {
    const text = line.trim();
    if (text.startsWith('//')) above.push(text);
    else {
      const m = /^(?:optional |repeated )?[\w.]+ (\w+) = \d+;(.*)$/.exec(text);
      if (m) fields.push({ field: m[1], comment: [...above, m[2].trim()].join(' ') });
      above = [];
    }
  }
  return fields;
}

/** The messages that carry a task's configuration and model. */
const CONFIG_MESSAGES = [
  'TaskConfig',
  'PrivacyConfig',
  'RecordPrivacy',
  'ClientPrivacy',
  'EvaluationConfig',
  'PrivateEvaluation',
  'ClassWeight',
  'CosineSchedule',
  'StepSchedule',
  'ModelSpec',
  'DenseLayer',
  'Quantisation',
];

describe('Task.config: the task configurations a real coordinator sends', () => {
  const coordinators: Coordinator[] = [];
  const dirs: string[] = [];
  const closers: (() => void)[] = [];
  afterAll(async () => {
    for (const c of coordinators) await c.close();
    for (const close of closers) close();
    for (const dir of dirs) await cleanUp({ dir });
  });

  /** The coordinator's own configuration of round 1, and the TaskConfig message an institution receives (over gRPC, or encoded and decoded). */
  async function configOf(flags: string[], overTheWire: boolean): Promise<{ planned: TaskConfig; received: TaskConfigMsg | undefined }> {
    const dir = tempDir('dpfed-proto-contract-');
    dirs.push(dir);
    const config = runConfig(['--rounds', '2', '--model', 'logistic', ...flags]);
    // --evaluation-data: the coordinator's own scorer of candidates, as `dpfed coordinator` builds it
    const evaluator = config.task.evaluation.coordinatorData ? await evaluationDataEvaluator(FRAUD_CSV, 'label', config.modelSpec, { schemaPath: FRAUD_SCHEMA }) : undefined;
    if (evaluator) closers.push(() => evaluator.close?.());
    const c = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, livenessMs: 60_000, evaluator });
    coordinators.push(c);
    const planned = (c.machine as never as { taskConfig(round: number): TaskConfig }).taskConfig(1);
    if (!overTheWire) return { planned, received: TaskConfigCodec.decode(TaskConfigCodec.encode(taskConfigMessage(planned)).finish()) };
    // a hand-made institution registers over mutual TLS and reads the config of its TRAIN task
    const identity = generateIdentity();
    enrol(c, 'bank-1', identity.publicKey);
    const conn = new CoordinatorConnection(`127.0.0.1:${c.port}`, testCredentials('bank-1'));
    try {
      const challenge = await conn.challenge({ institutionId: 'bank-1' });
      const { session, runId } = await conn.register(signedRegistration(challenge, { institutionId: 'bank-1', identity, budget: null }));
      const envelope: Envelope = { runId, round: 0, modelVersion: 0, institutionId: 'bank-1', session };
      const task = await within(
        (async () => {
          for (;;) {
            const t = await conn.pullTask(envelope, 5_000);
            if (t.kind === 'TRAIN') return t;
          }
        })(),
        20_000,
        'a TRAIN task',
      );
      expect(modelSpecFromMessage(task.modelSpec)).toEqual(config.modelSpec);
      return { planned, received: task.config };
    } finally {
      conn.close();
    }
  }

  const cases: { name: string; flags: string[]; wire: boolean }[] = [
    { name: 'privacy off, plain, FedAvg (received over gRPC)', flags: ['--min-clients', '1', '--privacy', 'off', '--aggregation', 'plain'], wire: true },
    {
      name: 'record-level DP, SecAgg, private evaluation, FedProx',
      flags: ['--min-clients', '3', '--privacy', 'record', '--epsilon', '3', '--aggregation', 'secagg', '--strategy', 'fedprox'],
      wire: false,
    },
    { name: 'client-level DP, SecAgg, FedAdam', flags: ['--min-clients', '3', '--privacy', 'client', '--epsilon', '3', '--aggregation', 'secagg', '--strategy', 'fedadam'], wire: false },
    {
      name: "CKKS, evaluation on the coordinator's data, training options",
      flags: [
        '--min-clients',
        '2',
        '--privacy',
        'off',
        '--aggregation',
        'ckks',
        '--evaluation-data',
        FRAUD_CSV,
        '--evaluate-every',
        '2',
        '--lr-schedule',
        'step:2:0.5',
        '--weight-decay',
        '0.01',
        '--class-weight',
        '3',
      ],
      wire: false,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: the institution reads back exactly the planned configuration`, async () => {
      const { planned, received } = await configOf(c.flags, c.wire);
      const read = parseTaskConfig(received);
      // false flags and absent ones read the same (proto3 booleans); everything else is kept as it is
      const evaluation = Object.fromEntries(Object.entries(planned.evaluation).filter(([, v]) => v !== false));
      expect(read).toEqual(JSON.parse(JSON.stringify({ ...planned, evaluation })));
    }, 60_000);
  }

  it('documents every field of the configuration and model messages in the .proto', () => {
    for (const message of CONFIG_MESSAGES) {
      const fields = protoFields(message);
      expect(fields.length, message).toBeGreaterThan(0);
      for (const { field, comment } of fields) {
        // a field documents itself by a comment, or by an enum type whose values are documented
        const enumTyped = new RegExp(`\\n  (\\w+) ${field} = `).exec(PROTO.slice(PROTO.indexOf(`\nmessage ${message} {`)))?.[1];
        const documented = comment.length > 2 || (enumTyped !== undefined && PROTO.includes(`\nenum ${enumTyped} {`));
        expect(documented, `${message}.${field} documented in federation.proto`).toBe(true);
      }
    }
  });

  it('refuses a configuration message that is incomplete or out of range, naming the field', () => {
    const good = taskConfigMessage(runConfig([]).task as TaskConfig);
    const planned = { ...runConfig([]).task, strategy: 'fedavg', proximalMu: 0, seed: 's' } as TaskConfig;
    const valid = taskConfigMessage(planned);
    expect(() => parseTaskConfig(valid)).not.toThrow();
    const bad: [RegExp, TaskConfigMsg | undefined][] = [
      [/config is required/, undefined],
      [/strategy is required/, good],
      [/optimizer must be sgd\|adam/, { ...valid, optimizer: 'OPTIMIZER_UNSPECIFIED' }],
      [/localSteps must be a positive number/, { ...valid, localSteps: 0 }],
      [/privacy is required/, { ...valid, privacy: undefined }],
      [/privacy.record is required in record mode/, { ...valid, privacy: { mode: 'PRIVACY_MODE_RECORD' } }],
      [/evaluation is required/, { ...valid, evaluation: undefined }],
      [/lrSchedule.kind must be constant\|cosine\|step/, { ...valid, lrSchedule: {} }],
      [
        /privacy.record.accountant must be rdp\|pld/,
        { ...valid, privacy: { mode: 'PRIVACY_MODE_RECORD', record: { clipNorm: 1, targetEpsilon: 3, delta: 1e-5, plannedRounds: 2, accountant: 'ACCOUNTANT_UNSPECIFIED', sampleRate: 0.01 } } },
      ],
    ];
    for (const [error, message] of bad) expect(() => parseTaskConfig(message), String(error)).toThrow(error);
  });
});
