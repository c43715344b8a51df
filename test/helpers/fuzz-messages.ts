// fast-check generators of dpfed wire messages for fuzzing the coordinator: arbitrary field values
// (strings of odd lengths and unicode, huge, negative and NaN numbers, empty and oversized bytes, missing
// messages), mutations of valid messages (a valid envelope with its run, round, model version or session
// changed, bit flips), and byte-level mutations of the encoded frames (bit flips, truncation, appended or
// wholly random bytes). A generated message may hold `{ $valid: tweak }` in place of an envelope: it is
// resolved, when the message is sent, against the fuzzing institution's real registration (resolve()).
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';

export interface FuzzContext {
  runId: string;
  institutionId: string;
  session: Uint8Array;
  round: number;
  modelVersion: number;
}

/** How a valid envelope is changed before it is sent (none: it stays valid). */
export type EnvelopeTweak = 'none' | 'run' | 'round' | 'version' | 'stale-session' | 'flip-session' | 'other-id' | 'empty-session';
export type ValidEnvelope = { $valid: EnvelopeTweak };

const ENUM_JUNK = fc.integer({ min: -3, max: 40 });

export const text = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.constantFrom('attacker', 'good-1', 'update', 'evaluation', 'ckks-sum', 'budget', 'w0', 'b0', '../../etc/passwd', '\u0000', '\uD800', 'é'.repeat(300)),
  fc.integer({ min: 1_000, max: 70_000 }).map((n) => 'x'.repeat(n)),
);

export const uint32 = fc.oneof(fc.constantFrom(0, 1, 2, 0x7fffffff, 0xffffffff), fc.nat({ max: 0xffffffff }), fc.integer({ min: -5, max: 5 }));
export const uint64 = fc.oneof(fc.constantFrom(0, 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53 + 2, 2 ** 63, 2 ** 64 - 2), fc.nat(), fc.integer({ min: -1_000, max: -1 }));
export const double = fc.oneof(fc.double(), fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 1e308, -1, 5e-324, 1e-5));
export const bytes = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.uint8Array({ minLength: 32, maxLength: 32 }),
  fc.uint8Array({ minLength: 64, maxLength: 64 }),
  fc.integer({ min: 1_000, max: 200_000 }).map((n) => new Uint8Array(n).fill(0xa5)),
);

const tweak = fc.constantFrom<EnvelopeTweak>('none', 'none', 'run', 'round', 'version', 'stale-session', 'flip-session', 'other-id', 'empty-session');

/** An envelope: missing, wholly arbitrary, or the fuzzing institution's valid one, perhaps changed. */
export const envelope = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.record({ runId: text, round: uint32, modelVersion: uint64, institutionId: text, session: bytes }, { requiredKeys: [] }) },
  { weight: 4, arbitrary: tweak.map((t): ValidEnvelope => ({ $valid: t })) },
);

export const ledgerHead = fc.option(fc.record({ seq: uint64, hash: bytes, signature: bytes }, { requiredKeys: [] }), { nil: null });

export const privacyEvent = fc.option(
  fc.record(
    {
      institutionId: text,
      runId: text,
      round: uint32,
      mode: fc.oneof(text, fc.constantFrom('record', 'client', 'evaluation')),
      sampleRate: double,
      noiseMultiplier: double,
      steps: uint64,
      clipNorm: double,
      delta: double,
      modelVersion: uint64,
      time: text,
      signature: bytes,
    },
    { requiredKeys: [] },
  ),
  { nil: null },
);

const dtype = fc.oneof(fc.constantFrom('DTYPE_UNSPECIFIED', 'FLOAT32', 'INT32', 'UINT32', 'FLOAT64', 'BYTES'), ENUM_JUNK);

export const tensorChunk = fc.record(
  {
    envelope,
    name: fc.oneof(text, fc.constantFrom('w0', 'b0', 'masked', 'positive', 'negative', 'ckks/sum')),
    shape: fc.array(uint32, { maxLength: 6 }),
    dtype,
    totalBytes: uint64,
    offset: uint64,
    data: bytes,
    tensorIndex: uint32,
    tensorCount: uint32,
  },
  { requiredKeys: [] },
);

export const resultHeader = fc.record(
  {
    envelope,
    kind: fc.oneof(fc.constantFrom('RESULT_KIND_UNSPECIFIED', 'TRAIN_RESULT', 'EVALUATE_RESULT', 'CKKS_DECRYPTED_SUM'), ENUM_JUNK),
    numExamples: uint64,
    metrics: fc.dictionary(text, double, { maxKeys: 4 }),
    privacyEvent,
    tensorCount: uint32,
    masked: fc.boolean(),
    encrypted: fc.boolean(),
    ledgerHead,
  },
  { requiredKeys: [] },
);

export const resultChunk = fc.oneof(fc.record({ header: resultHeader }), fc.record({ tensor: tensorChunk }), fc.constant({}));

const share = fc.record({ aboutInstitution: text, value: bytes }, { requiredKeys: [] });
const encryptedShare = fc.record({ fromInstitution: text, toInstitution: text, nonce: bytes, ciphertext: bytes }, { requiredKeys: [] });

export const secAggMessage = fc
  .record(
    {
      envelope,
      collection: fc.oneof(text, fc.constantFrom('update', 'evaluation')),
      body: fc.oneof(
        fc.constant({}),
        fc.record({ advertise: fc.record({ institutionId: text, index: uint32, encryptionPublicKey: bytes, maskPublicKey: bytes, signature: bytes }, { requiredKeys: [] }) }),
        fc.record({ shareKeys: fc.record({ shares: fc.array(encryptedShare, { maxLength: 4 }) }) }),
        fc.record({ unmask: fc.record({ selfMaskShares: fc.array(share, { maxLength: 4 }), maskKeyShares: fc.array(share, { maxLength: 4 }), signature: bytes }, { requiredKeys: [] }) }),
        fc.record({ ckksPublicKey: fc.record({ key: bytes, signature: bytes }, { requiredKeys: [] }) }),
      ),
    },
    { requiredKeys: [] },
  )
  .map(({ body, ...rest }) => ({ ...rest, ...body }));

export const declineRequest = fc.record(
  { envelope, reason: fc.oneof(text, fc.constantFrom('declined', 'shutting down', 'no data')), projectedEpsilon: double, budgetEpsilon: double, detail: text },
  { requiredKeys: [] },
);

/** A PullTask's wait: short, so a valid long poll ends well before the call's deadline. */
export const shortWait = fc.nat({ max: 100 });

export const heartbeatRequest = fc.record({ envelope }, { requiredKeys: [] });
export const pullTaskRequest = fc.record({ envelope, waitMs: shortWait }, { requiredKeys: [] });
export const modelRequest = fc.record({ envelope, chunkBytes: uint32, artifact: fc.oneof(fc.constant(''), fc.constant('ckks-sum'), text) }, { requiredKeys: [] });
export const challengeRequest = fc.record({ institutionId: fc.oneof(text, fc.constantFrom('attacker', 'good-1', 'bank-1')) }, { requiredKeys: [] });

/**
 * `{ $signed, bit }`: a registration signed properly over a fresh nonce when sent, then with one bit of its
 * signature or nonce flipped (`$signed: 'signature' | 'nonce'`) or left intact (`true`; the encoded bytes
 * may still be mutated).
 */
export type SignedRegister = { $signed: true | 'signature' | 'nonce'; bit: number };
export const registerRequest = fc.oneof(
  fc.record({ $signed: fc.constantFrom<SignedRegister['$signed']>(true, 'signature', 'nonce'), bit: fc.nat() }),
  fc.record(
    {
      institutionId: fc.oneof(text, fc.constant('attacker')),
      identityPublicKey: bytes,
      protocolVersion: fc.oneof(uint32, fc.constant(1)),
      budget: fc.option(fc.record({ epsilon: double, delta: double }, { requiredKeys: [] }), { nil: null }),
      clientVersion: text,
      signature: bytes,
      nonce: bytes,
      declaredExamples: uint64,
      schemaHash: bytes,
      ledgerHead,
      anchorHash: bytes,
    },
    { requiredKeys: [] },
  ),
);

/** A change to encoded protobuf bytes. */
export type Mutation = { kind: 'none' } | { kind: 'flip'; bits: number[] } | { kind: 'truncate'; at: number } | { kind: 'append'; bytes: Uint8Array } | { kind: 'garbage'; bytes: Uint8Array };

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ kind: 'none' } as const) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flip' as const), bits: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ maxLength: 300 }) }) },
);

export function mutate(encoded: Buffer, m: Mutation): Buffer {
  switch (m.kind) {
    case 'none':
      return encoded;
    case 'flip': {
      if (encoded.length === 0) return encoded;
      const out = Buffer.from(encoded);
      for (const bit of m.bits) out[Math.floor(bit / 8) % out.length] ^= 1 << (bit % 8);
      return out;
    }
    case 'truncate':
      return encoded.subarray(0, encoded.length === 0 ? 0 : m.at % encoded.length);
    case 'append':
      return Buffer.concat([encoded, m.bytes]);
    case 'garbage':
      return Buffer.from(m.bytes);
  }
}

/** `bytes` with bit `bit` (modulo its length) flipped, as a new array. */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = new Uint8Array(bytes);
  if (out.length) out[Math.floor(bit / 8) % out.length] ^= 1 << (bit % 8);
  return out;
}

function envelopeOf(ctx: FuzzContext, t: EnvelopeTweak) {
  const valid = { runId: ctx.runId, round: ctx.round, modelVersion: ctx.modelVersion, institutionId: ctx.institutionId, session: Buffer.from(ctx.session) };
  switch (t) {
    case 'none':
      return valid;
    case 'run':
      return { ...valid, runId: `${ctx.runId}-other` };
    case 'round':
      return { ...valid, round: ctx.round + 1 + (ctx.round % 3) };
    case 'version':
      return { ...valid, modelVersion: ctx.modelVersion + 7 };
    case 'stale-session':
      return { ...valid, session: randomBytes(ctx.session.length) };
    case 'flip-session': {
      const session = Buffer.from(ctx.session);
      session[0] ^= 0x01;
      return { ...valid, session };
    }
    case 'other-id':
      return { ...valid, institutionId: 'good-1' };
    case 'empty-session':
      return { ...valid, session: Buffer.alloc(0) };
  }
}

/** The message with every `{ $valid: tweak }` replaced by the (changed) valid envelope of `ctx`. */
export function resolve<T>(ctx: FuzzContext, message: T): T {
  if (message === null || typeof message !== 'object' || ArrayBuffer.isView(message)) return message;
  if (Array.isArray(message)) return message.map((m) => resolve(ctx, m)) as T;
  const valid = (message as { $valid?: EnvelopeTweak }).$valid;
  if (valid) return envelopeOf(ctx, valid) as T;
  return Object.fromEntries(Object.entries(message).map(([k, v]) => [k, resolve(ctx, v)])) as T;
}
