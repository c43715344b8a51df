// The Kubernetes manifest that `dpfed sim --emit-k8s-job` prints: a batch/v1 Indexed Job that runs a
// sweep as `shards` pods, pod I running `dpfed sim … --shard I/N` and writing its results to
// `<outDir>/shard-I` on a shared PersistentVolumeClaim, from where `dpfed sim merge` combines them. The
// Job controller is the scheduler: it starts one pod per completion index, retries failed ones and
// records which indices succeeded.
import { Document } from 'yaml';

export interface SimJobOptions {
  /** Number of shards: the Job's completions and parallelism, and N in `--shard I/N`. */
  shards: number;
  /** Container image with the `dpfed` launcher as its entrypoint (the Dockerfile's images). */
  image: string;
  /** The sweep's `dpfed sim` flags, without `--shard` and `--out` (the Job sets them per pod). */
  args: string[];
  /** Absolute path where the results claim is mounted; shard I writes `<outDir>/shard-I`. */
  outDir: string;
  /** The PersistentVolumeClaim for results (ReadWriteMany when pods may land on several nodes). */
  claimName?: string;
  /** The Job's name. */
  name?: string;
}

export const DEFAULT_SIM_JOB_NAME = 'dpfed-sim';
/** The claim deploy/k8s/base/sim-results-volume.yaml creates. */
export const DEFAULT_SIM_RESULTS_CLAIM = 'dpfed-sim-results';
/** Indexed Jobs allow at most 100,000 completions. */
const MAX_SHARDS = 100_000;
/** The image's unprivileged user (the Dockerfile's `dpfed` user). */
const RUN_AS = 10001;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Kubernetes expands `$(NAME)` in a container's args from the container's environment and turns `$$`
 * into `$`. Doubling every `$` keeps the sweep's own arguments exactly as given.
 */
function literalArg(arg: string): string {
  return arg.split('$').join('$$');
}

function check(o: SimJobOptions): void {
  if (!Number.isInteger(o.shards) || o.shards < 1 || o.shards > MAX_SHARDS) {
    throw new RangeError(`k8s sim job: shards must be a whole number from 1 to ${MAX_SHARDS}, got ${o.shards}`);
  }
  if (!o.image || /\s/.test(o.image)) throw new RangeError(`k8s sim job: image must be a non-empty image reference without spaces, got "${o.image}"`);
  if (!o.outDir.startsWith('/') || o.outDir === '/' || o.outDir.includes('$')) {
    throw new RangeError(`k8s sim job: outDir must be an absolute path in the container other than / (the results claim is mounted there), got "${o.outDir}"`);
  }
  const name = o.name ?? DEFAULT_SIM_JOB_NAME;
  // Pods of an Indexed Job are named and labelled after the Job, so its name must fit a 63-character label.
  if (name.length > 63 || !DNS_LABEL.test(name)) throw new RangeError(`k8s sim job: name must be a DNS label (lower-case letters, digits and '-', at most 63 characters), got "${name}"`);
  const claim = o.claimName ?? DEFAULT_SIM_RESULTS_CLAIM;
  if (claim.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(claim)) throw new RangeError(`k8s sim job: claimName must be a DNS subdomain name, got "${claim}"`);
  const taken = o.args.find((a) => /^--(shard|out)(=|$)/.test(a));
  if (taken !== undefined) throw new RangeError(`k8s sim job: args must not contain ${taken.split('=')[0]}: the Job sets --shard and --out for each pod`);
}

/** The Job as a YAML document. */
export function simJobManifest(o: SimJobOptions): string {
  check(o);
  const name = o.name ?? DEFAULT_SIM_JOB_NAME;
  const outDir = o.outDir.replace(/\/+$/, '');
  const labels = { 'app.kubernetes.io/name': 'dpfed', 'app.kubernetes.io/component': 'sim' };
  const job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, labels },
    spec: {
      completionMode: 'Indexed',
      completions: o.shards,
      parallelism: o.shards,
      // A failed pod is retried under the same index; the Job fails after this many failures in all.
      backoffLimit: Math.max(4, 2 * o.shards),
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          securityContext: { runAsNonRoot: true, runAsUser: RUN_AS, runAsGroup: RUN_AS, fsGroup: RUN_AS, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'sim',
              image: o.image,
              args: ['sim', ...o.args.map(literalArg), `--shard=$(JOB_COMPLETION_INDEX)/${o.shards}`, `--out=${outDir}/shard-$(JOB_COMPLETION_INDEX)`],
              env: [{ name: 'JOB_COMPLETION_INDEX', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } }],
              resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { memory: '4Gi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [
                { name: 'results', mountPath: outDir },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            { name: 'results', persistentVolumeClaim: { claimName: o.claimName ?? DEFAULT_SIM_RESULTS_CLAIM } },
            { name: 'tmp', emptyDir: {} },
          ],
        },
      },
    },
  };
  const doc = new Document(job, { aliasDuplicateObjects: false });
  doc.commentBefore = [
    ` dpfed sim sweep as a Kubernetes Indexed Job: ${o.shards} shard(s), one pod per completion index.`,
    ` Pod I runs \`dpfed sim … --shard=I/${o.shards}\` and writes ${outDir}/shard-I on the claim`,
    ` ${o.claimName ?? DEFAULT_SIM_RESULTS_CLAIM}, which must exist (ReadWriteMany if pods may run on several nodes).`,
    ` When every index has succeeded: dpfed sim merge over the shard folders.`,
  ].join('\n');
  const env = doc.getIn(['spec', 'template', 'spec', 'containers', 0, 'env', 0], true) as { commentBefore?: string };
  env.commentBefore = [
    ' Kubernetes expands $(NAME) in args from the variables the container defines (env, envFrom) when it',
    ' starts the container. The Job controller adds JOB_COMPLETION_INDEX to the pods of an Indexed Job',
    ' itself; the template defines it too, from the same completion-index annotation through the downward',
    ' API, so the value $(JOB_COMPLETION_INDEX) expands to is declared in this manifest and is the same',
    ' either way.',
  ].join('\n');
  return doc.toString({ lineWidth: 0 });
}
