// The institution refuses a secure-aggregation or CKKS step that could leak its input (e.g. a request for
// both shares of one peer, or a decryption of a single update). FederationClient answers it with one
// decline of the step and never handles that task again.

/** The institution refuses a secure-aggregation or CKKS step that could leak its input. */
export class ProtocolRefusal extends Error {}
