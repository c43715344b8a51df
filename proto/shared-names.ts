// The names both sides of the wire must spell the same way, defined once: the protocol version, the names of
// the tensors a result carries, the secure sums' collections and the download artifacts. The coordinator and
// the institution import them from here; federation.proto documents each where the message that carries it is.

/** RegisterRequest.protocol_version this build speaks. */
export const PROTOCOL_VERSION = 1;

/** Tensor names of results that are not model parameters (model parameters are named by proto/model-spec.ts). */
export const TENSOR_NAMES = {
  /** The one tensor of a masked result (secure aggregation): the quantised, masked vector, UINT32. */
  secaggMasked: 'secagg/masked',
  /** EVALUATE_RESULT: the score histogram of the rows with label 1, UINT32 [bins]. */
  histogramPositive: 'histogram/positive',
  /** EVALUATE_RESULT: the score histogram of the rows with label 0, UINT32 [bins]. */
  histogramNegative: 'histogram/negative',
  /** CKKS_DECRYPTED_SUM: the key holder's rounded decryption of the summed ciphertexts, FLOAT64. */
  ckksSum: 'ckks/sum',
} as const;

/** The two tensors of an EVALUATE_RESULT, in the order they are sent. */
export const HISTOGRAM_TENSORS = [TENSOR_NAMES.histogramPositive, TENSOR_NAMES.histogramNegative] as const;

/** SecAggTask.collection / SecAggMessage.collection: one secure sum per collection in a round. */
export const COLLECTIONS = {
  /** The TRAIN updates. */
  update: 'update',
  /** The EVALUATE histograms. */
  evaluation: 'evaluation',
} as const;

export type CollectionName = (typeof COLLECTIONS)[keyof typeof COLLECTIONS];

/** ModelRequest.artifact: "" is the model of the envelope's version; this one the round's summed ciphertexts (the CKKS key holder only). */
export const CKKS_SUM_ARTIFACT = 'ckks-sum';
