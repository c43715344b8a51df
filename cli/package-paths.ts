// Files of the dpfed package and of its repository, the same whether this module runs compiled (dist/) or
// from its TypeScript source.
import { fileURLToPath } from 'node:url';

const PACKAGE_ROOT = new URL(import.meta.url.endsWith('.ts') ? './' : '../', import.meta.url);

/** The package's `dpfed` command, which the demo starts its coordinator and banks with. */
export const DPFED_BIN = fileURLToPath(new URL('bin/dpfed.js', PACKAGE_ROOT));

/**
 * The repository's data/ folder (the bundled card-fraud sample the demo and the bench use). It sits beside
 * the packages in the source repository and is not part of the published package: an installed `dpfed`
 * runs the demo on `--data` and `--schema` files of its own.
 */
export const REPOSITORY_DATA_DIR = fileURLToPath(new URL('../data/', PACKAGE_ROOT));
