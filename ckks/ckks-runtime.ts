// The shared SEAL context: node-seal loaded and the federation's CKKS context built once per process and
// never freed, with the reference byte layouts every ciphertext and key is checked against.
//
// Randomness: SEAL draws its keys and encryption noise from the wasm module's random device, which in
// Node is crypto.randomFillSync (checked in node-seal's loader).
import { createRequire } from 'node:module';

import { referenceLayouts, type Layouts } from './ckks-byte-layouts.ts';
import { CKKS_PARAMETERS, SLOTS } from '@dpfed/privacy/ckks-parameters';
import type { CKKSEncoder, Context, Evaluator, SEALLibrary } from './node-seal-types.ts';

export interface CkksRuntime {
  seal: SEALLibrary;
  context: Context;
  encoder: CKKSEncoder;
  evaluator: Evaluator;
  /** parms_id of the data level, where every valid ciphertext of ours lives. */
  dataParmsId: bigint[];
  layouts: Layouts;
}

let runtime: Promise<CkksRuntime> | undefined;

type SealFactory = () => Promise<SEALLibrary>;

/** Loads node-seal (CommonJS factory) and builds the federation's CKKS context once per process. */
export function loadCkksRuntime(): Promise<CkksRuntime> {
  runtime ??= (async () => {
    const required = createRequire(import.meta.url)('node-seal') as SealFactory | { default: SealFactory };
    const factory = typeof required === 'function' ? required : required.default;
    const seal = await factory();
    const parms = seal.EncryptionParameters(seal.SchemeType.ckks);
    parms.setPolyModulusDegree(CKKS_PARAMETERS.polyModulusDegree);
    const moduli = seal.CoeffModulus.Create(CKKS_PARAMETERS.polyModulusDegree, Int32Array.from(CKKS_PARAMETERS.coeffModulusBits));
    parms.setCoeffModulus(moduli);
    const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
    moduli.delete();
    parms.delete();
    if (!context.parametersSet()) throw new Error('ckks: SEAL refused the CKKS parameters (N = 8192, [60, 60], 128-bit)');
    const encoder = seal.CKKSEncoder(context);
    if (encoder.slotCount !== SLOTS) throw new Error(`ckks: expected ${SLOTS} slots, SEAL reports ${encoder.slotCount}`);
    const evaluator = seal.Evaluator(context);
    const id = context.firstParmsId;
    const dataParmsId = Array.from(id.values);
    id.delete();
    const layouts = referenceLayouts(seal, context, encoder);
    return { seal, context, encoder, evaluator, dataParmsId, layouts };
  })();
  return runtime;
}
