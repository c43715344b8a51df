// `--only install`: what a bank installs. The workspace packages are packed (`npm pack`) and @dpfed/client
// is installed alone into an empty folder from the tarballs; beside it, the runtime dependencies dpfed had
// as one package (monolith-dependencies.json) are installed into another empty folder. Both installs use
// npm --prefer-offline (the npm cache, the registry for what it lacks) and leave out optional packages
// (the native TensorFlow backends download libtensorflow from outside the registry at install time).
// Reported: MB on disk (allocated blocks, as du counts them) and the number of packages of each install,
// and the client's share of the whole. Goal: the client at most 1/3 of the whole.
import { execFile } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './bench-paths.ts';
import { roundTo } from './statistics.ts';

const CLIENT_PACKAGES = ['@dpfed/client', '@dpfed/privacy', '@dpfed/proto'];

export interface InstallSize {
  mb: number;
  packages: number;
}

async function npm(args: string[], cwd: string): Promise<string> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // npm itself runs without the tests' tsx loader
  const { stdout } = await promisify(execFile)('npm', args, { cwd, env, maxBuffer: 16 << 20, encoding: 'utf8' });
  return stdout;
}

/** Bytes allocated on disk under `path` (symbolic links counted as themselves, hard links once per path). */
function diskBytes(path: string): number {
  const stat = lstatSync(path);
  if (!stat.isDirectory()) return stat.blocks * 512;
  let total = stat.blocks * 512;
  for (const name of readdirSync(path)) total += diskBytes(join(path, name));
  return total;
}

/** Packages installed under a node_modules folder, nested ones included. */
function packageCount(modules: string): number {
  let count = 0;
  for (const name of readdirSync(modules)) {
    if (name.startsWith('.')) continue;
    const dirs = name.startsWith('@') ? readdirSync(join(modules, name)).map((n) => join(modules, name, n)) : [join(modules, name)];
    for (const dir of dirs) {
      count++;
      try {
        count += packageCount(join(dir, 'node_modules'));
      } catch {
        // no nested node_modules
      }
    }
  }
  return count;
}

/** Installs `specs` into the empty folder `dir` and measures its node_modules. */
export async function measureInstall(dir: string, specs: string[], dependencies: Record<string, string> = {}): Promise<InstallSize> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'install-size', version: '1.0.0', private: true, dependencies }));
  await npm(['install', '--prefer-offline', '--omit=optional', '--no-audit', '--no-fund', ...specs], dir);
  const modules = join(dir, 'node_modules');
  return { mb: roundTo(diskBytes(modules) / 1e6, 1), packages: packageCount(modules) };
}

export async function benchInstallSize(): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'dpfed-install-bench-'));
  try {
    const tarballDir = join(dir, 'tarballs');
    mkdirSync(tarballDir);
    const packed = JSON.parse(await npm(['pack', '--json', '--pack-destination', tarballDir, ...CLIENT_PACKAGES.flatMap((p) => ['-w', p])], ROOT)) as { filename: string }[];
    const client = await measureInstall(
      join(dir, 'client'),
      packed.map((p) => join(tarballDir, p.filename)),
    );
    const monolithDependencies = (JSON.parse(readFileSync(join(ROOT, 'bench', 'monolith-dependencies.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies;
    const monolith = await measureInstall(join(dir, 'monolith'), [], monolithDependencies);
    return {
      clientInstallMB: client.mb,
      clientInstallPackages: client.packages,
      monolithInstallMB: monolith.mb,
      monolithInstallPackages: monolith.packages,
      clientInstallShare: roundTo(client.mb / monolith.mb, 3),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
