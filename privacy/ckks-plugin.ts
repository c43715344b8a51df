// CKKS homomorphic aggregation (`--aggregation ckks`) as an optional plugin. The encryption itself lives
// in the package @dpfed/ckks (node-seal, Microsoft SEAL compiled to wasm, about 67 MB), which neither an
// institution nor a coordinator installs unless its runs use CKKS. This module is what the client and the
// coordinator import instead: the same names as the plugin's ckks.ts (createFederationKeys,
// CkksEncryptor.create, CkksAggregator.create, CkksDecryptor.create), each loading the plugin with a
// dynamic import() on first use, and a clear error telling the user to install it when it is absent.
// The arithmetic that needs no encryption (ciphertext counts, error bounds) is in ckks-parameters.ts.

export { CKKS_LIMITS, CKKS_PARAMETERS, ckksCiphertextCount, ckksSumErrorBound, DEFAULT_RELEASE_PRECISION_BITS } from './ckks-parameters.ts';

/** The npm package of the plugin. */
export const CKKS_PLUGIN_PACKAGE = '@dpfed/ckks';

export interface CkksKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** Encrypts update vectors under one public (or, symmetric, secret) key. */
export interface CkksEncryptor {
  encrypt(values: Float32Array): Uint8Array[];
  dispose(): void;
}

/** Adds ciphertext lists without any secret key. */
export interface CkksAggregator {
  readonly count: number;
  add(ciphertexts: readonly Uint8Array[], from?: string): void;
  result(): Uint8Array[];
  dispose(): void;
}

export interface CkksDecryptorOptions {
  /** The released sum is rounded to multiples of 2^-bits (default DEFAULT_RELEASE_PRECISION_BITS). */
  releasePrecisionBits?: number;
}

/** Decrypts only sums, range-checked and rounded for release. */
export interface CkksDecryptor {
  decryptSum(ciphertexts: readonly Uint8Array[], length: number): Float64Array;
  dispose(): void;
}

/** What the plugin package exports (its index.ts: `export const plugin = … satisfies CkksPlugin`). */
export interface CkksPlugin {
  createFederationKeys(): Promise<CkksKeyPair>;
  CkksEncryptor: { create(publicKey: Uint8Array): Promise<CkksEncryptor>; createSymmetric(secretKey: Uint8Array): Promise<CkksEncryptor> };
  CkksAggregator: { create(vectorLength: number): Promise<CkksAggregator> };
  CkksDecryptor: { create(secretKey: Uint8Array, options?: CkksDecryptorOptions): Promise<CkksDecryptor> };
}

/** The plugin is absent: names the package to install. */
export class CkksPluginMissingError extends Error {
  constructor(cause: unknown) {
    super(`--aggregation ckks needs the optional CKKS plugin, which is not installed: run "npm install ${CKKS_PLUGIN_PACKAGE}" (it brings node-seal), or use --aggregation secagg`, { cause });
    this.name = 'CkksPluginMissingError';
  }
}

let loading: Promise<CkksPlugin> | undefined;

function isMissing(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && String(e.message).includes(CKKS_PLUGIN_PACKAGE);
}

/** The CKKS plugin, imported once per process; throws CkksPluginMissingError when it is not installed. */
export function loadCkksPlugin(): Promise<CkksPlugin> {
  loading ??= (async () => {
    // A specifier in a variable: the plugin is not a dependency of this package, only an optional peer.
    const specifier: string = CKKS_PLUGIN_PACKAGE;
    try {
      const module = (await import(specifier)) as { plugin: CkksPlugin };
      return module.plugin;
    } catch (error) {
      if (isMissing(error)) throw new CkksPluginMissingError(error);
      throw error;
    }
  })();
  loading.catch(() => {
    loading = undefined;
  });
  return loading;
}

export async function createFederationKeys(): Promise<CkksKeyPair> {
  return (await loadCkksPlugin()).createFederationKeys();
}

export const CkksEncryptor = {
  create: async (publicKey: Uint8Array): Promise<CkksEncryptor> => (await loadCkksPlugin()).CkksEncryptor.create(publicKey),
  createSymmetric: async (secretKey: Uint8Array): Promise<CkksEncryptor> => (await loadCkksPlugin()).CkksEncryptor.createSymmetric(secretKey),
};

export const CkksAggregator = {
  create: async (vectorLength: number): Promise<CkksAggregator> => (await loadCkksPlugin()).CkksAggregator.create(vectorLength),
};

export const CkksDecryptor = {
  create: async (secretKey: Uint8Array, options?: CkksDecryptorOptions): Promise<CkksDecryptor> => (await loadCkksPlugin()).CkksDecryptor.create(secretKey, options),
};
