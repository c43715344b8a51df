// Where the bench finds the repository and its own child scripts, whether it runs compiled (bench/dist/,
// as `npm run bench` does) or from its TypeScript source (tests, tsx).
import { fileURLToPath } from 'node:url';

const FROM_SOURCE = import.meta.url.endsWith('.ts');

/** The repository root (data/ lives there). */
export const ROOT = fileURLToPath(new URL(FROM_SOURCE ? '..' : '../..', import.meta.url));

/**
 * Node arguments that run the bench module `name` ('overhead-clients') as a child process: its compiled
 * .js, or from source its .ts through tsx with the "source" export condition (as the parent resolves).
 */
export function benchScriptArgs(name: string): string[] {
  const path = fileURLToPath(new URL(`./${name}${FROM_SOURCE ? '.ts' : '.js'}`, import.meta.url));
  return FROM_SOURCE ? ['--import', 'tsx', '--conditions=source', path] : [path];
}
