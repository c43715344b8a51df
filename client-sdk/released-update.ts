// An update as it left (or is about to leave) the institution: trained, clipped, recorded in its ledger.
// It is kept so that a re-run round re-sends it instead of training again (no second privacy spend), and
// its encoding for a secure sum or CKKS is kept with it, so a noisy encoding enters one sum only.
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { ResultHeaderMsg } from '@dpfed/proto/wire';

/** An update as it left (or is about to leave) the institution, kept so a re-run round re-sends it. */
export interface Release {
  key: string;
  delta: Float32Array;
  weight: number;
  /** The release policy's noise share per institution for `offered` institutions (update units; 0 without distributed noise). */
  noiseShareStd: (offered: number) => number;
  tensors: NamedTensor[];
  header: ResultHeaderMsg;
  encoded?: { fingerprint: string; vector: Uint32Array; noisy: boolean };
}
