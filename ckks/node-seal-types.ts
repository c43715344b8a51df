// The node-seal types ckks.ts works with, derived from node-seal's public entry point only.
// node-seal (pinned exactly in package.json) exports one thing: a factory `() => Promise<SEALLibrary>`. Its
// classes' types live under `node-seal/implementation/*`, paths its package does not promise to keep, so
// instead of importing them each type here is read off what the public factory returns. If an upgrade
// renames a method these are derived from, `tsc --noEmit -p .` fails here, in one file. Type-only: nothing
// of this file exists at run time.
/** The loaded SEAL library (what the node-seal factory resolves to). */
export type SEALLibrary = Awaited<ReturnType<typeof import('node-seal').default>>;
/** A SEAL context for one set of encryption parameters. */
export type Context = ReturnType<SEALLibrary['Context']>;
/** The CKKS encoder (vectors of reals to plaintexts and back). */
export type CKKSEncoder = ReturnType<SEALLibrary['CKKSEncoder']>;
/** The evaluator (homomorphic additions). */
export type Evaluator = ReturnType<SEALLibrary['Evaluator']>;
/** One ciphertext. */
export type CipherText = ReturnType<SEALLibrary['CipherText']>;
