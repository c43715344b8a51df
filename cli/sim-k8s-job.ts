// `dpfed sim --emit-k8s-job FILE`: instead of running the sweep, write the Kubernetes Indexed Job that
// runs it as shards (simulations/k8s-sim-job.ts), each pod with the sweep's own flags plus --resume (a
// retried pod continues its shard), --shard I/N and its own folder under --out on the shared volume.
import { writeFileSync } from 'node:fs';
import { DEFAULT_SIM_JOB_NAME, DEFAULT_SIM_RESULTS_CLAIM, simJobManifest } from '@dpfed/simulations/k8s-sim-job';
import { type FlagSpec, type FlagValues, UsageError } from '@dpfed/proto/command-flags';

const positiveInt = (v: number | string) => (Number.isInteger(Number(v)) && Number(v) >= 1 ? undefined : 'must be a positive integer');

export const K8S_JOB_FLAGS: FlagSpec[] = [
  {
    name: 'emit-k8s-job',
    type: 'string',
    help: 'instead of running: write to FILE a Kubernetes Indexed Job running this sweep as --k8s-shards pods (pod I: --shard I/N --resume, results in <--out>/shard-I on a shared volume; --out is the path in the container); combine with dpfed sim merge',
  },
  { name: 'k8s-shards', type: 'int', default: 4, help: 'with --emit-k8s-job: the number of shards (pods)', check: positiveInt },
  { name: 'k8s-image', type: 'string', default: 'dpfed:0.1.0', help: "with --emit-k8s-job: the container image (the Dockerfile's, entrypoint dpfed)" },
  { name: 'k8s-claim', type: 'string', default: DEFAULT_SIM_RESULTS_CLAIM, help: 'with --emit-k8s-job: the PersistentVolumeClaim the results go to' },
  { name: 'k8s-name', type: 'string', default: DEFAULT_SIM_JOB_NAME, help: "with --emit-k8s-job: the Job's name" },
];

/** Flags that shape how this process runs or what it writes, not the sweep: left out of a Job's pods' arguments. */
const NOT_FOR_PODS = new Set(['out', 'shard', 'resume', 'json', 'emit-k8s-job', 'k8s-shards', 'k8s-image', 'k8s-claim', 'k8s-name']);

/** The sweep's arguments as given, without the flags in NOT_FOR_PODS (with their values). */
export function podArgs(argv: string[], flags: FlagSpec[]): string[] {
  const byName = new Map(flags.map((f) => [f.name, f]));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].slice(2).split('=')[0];
    const takesValue = byName.get(name)?.type !== 'boolean' && !argv[i].includes('=');
    if (NOT_FOR_PODS.has(name)) {
      if (takesValue) i++;
      continue;
    }
    out.push(argv[i]);
    if (takesValue) out.push(argv[++i]);
  }
  return out;
}

/** --emit-k8s-job: the Indexed Job's manifest, written to FILE; nothing runs. */
export function emitJob(f: FlagValues, args: string[]): number {
  let yaml: string;
  try {
    yaml = simJobManifest({
      shards: Number(f.k8sShards),
      image: String(f.k8sImage),
      args: [...args, '--resume'],
      outDir: String(f.out),
      claimName: String(f.k8sClaim),
      name: String(f.k8sName),
    });
  } catch (error) {
    const message = (error as Error).message.replace(/^k8s sim job: /, '');
    const flag = /^outDir/.test(message)
      ? '--out'
      : /^shards/.test(message)
        ? '--k8s-shards'
        : /^image/.test(message)
          ? '--k8s-image'
          : /^name/.test(message)
            ? '--k8s-name'
            : /^claimName/.test(message)
              ? '--k8s-claim'
              : '--emit-k8s-job';
    throw new UsageError(`${flag}: ${message}`);
  }
  try {
    writeFileSync(String(f.emitK8sJob), yaml);
  } catch (error) {
    throw new UsageError(`--emit-k8s-job: cannot write ${f.emitK8sJob}: ${(error as Error).message}`);
  }
  const line = `sim: wrote ${f.emitK8sJob}: an Indexed Job of ${f.k8sShards} shards writing ${f.out}/shard-I; apply it with kubectl apply -f ${f.emitK8sJob}, then dpfed sim merge --out DIR ${f.out}/shard-*`;
  if (f.json) process.stdout.write(JSON.stringify({ manifest: String(f.emitK8sJob), shards: Number(f.k8sShards), outDir: String(f.out) }) + '\n');
  else process.stdout.write(line + '\n');
  return 0;
}
