// The Kubernetes Indexed Job that `dpfed sim --emit-k8s-job` prints (simulations/k8s-sim-job.ts): it
// validates against the vendored Kubernetes v1.30 schemas, and each pod's arguments, expanded as the
// kubelet expands $(VAR) references, are the sweep's own arguments followed by its shard and its folder on
// the results claim.
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { simJobManifest, type SimJobOptions } from '@dpfed/simulations/k8s-sim-job';
import { schemaValidator } from './helpers/k8s-schema-validator.ts';

const validate = schemaValidator();

function parse(yaml: string): any {
  const docs = parseAllDocuments(yaml);
  expect(docs).toHaveLength(1);
  expect(docs[0].errors).toEqual([]);
  return docs[0].toJS();
}

/**
 * Kubernetes' expansion of a container's args (k8s.io/kubernetes third_party/forked/golang/expansion):
 * `$(NAME)` becomes the variable's value when the container defines it and stays as written otherwise,
 * `$$` becomes `$`, any other `$` stays.
 */
function kubeExpand(input: string, env: Record<string, string>): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    if (input[i] !== '$' || i + 1 >= input.length) {
      out += input[i];
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i += 1;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += input.slice(i);
        break;
      }
      const name = input.slice(i + 2, close);
      out += name in env ? env[name] : `$(${name})`;
      i = close;
    } else {
      out += `$${next}`;
      i += 1;
    }
  }
  return out;
}

const BASE: SimJobOptions = {
  shards: 4,
  image: 'registry.example/dpfed:0.1.0-wasm',
  args: ['--data', 'synthetic:fraud', '--epsilons', '0.5,1,inf', '--seeds', '2', '--note=cost $5 $(HOME) $$'],
  outDir: '/results',
};

describe('simJobManifest', () => {
  it('is a batch/v1 Indexed Job that validates against the vendored Kubernetes schemas', () => {
    const job = parse(simJobManifest(BASE));
    expect(validate(job).errors).toEqual([]);
    expect(job.apiVersion).toBe('batch/v1');
    expect(job.kind).toBe('Job');
    expect(job.metadata.name).toBe('dpfed-sim');
    expect(job.spec.completionMode).toBe('Indexed');
    expect(job.spec.completions).toBe(4);
    expect(job.spec.parallelism).toBe(4);
    const pod = job.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    const c = pod.containers[0];
    expect(c.image).toBe(BASE.image);
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(c.resources.requests).toEqual({ cpu: '1', memory: '1Gi' });
    // results on the claim, mounted at the output folder
    const results = pod.volumes.find((v: any) => v.persistentVolumeClaim);
    expect(results.persistentVolumeClaim.claimName).toBe('dpfed-sim-results');
    expect(c.volumeMounts.find((m: any) => m.name === results.name).mountPath).toBe('/results');
  });

  it('a misspelt field in the generated Job is caught by the schema (the validation can fail)', () => {
    const job = parse(simJobManifest(BASE));
    job.spec.template.spec.containers[0].argz = job.spec.template.spec.containers[0].args;
    expect(validate(job).ok).toBe(false);
  });

  it.each([0, 3])("pod %i runs dpfed sim with the sweep's own args, its shard and its folder", (index) => {
    const job = parse(simJobManifest(BASE));
    const c = job.spec.template.spec.containers[0];
    // JOB_COMPLETION_INDEX is defined by the container itself, from the completion-index annotation.
    const indexVar = c.env.find((e: any) => e.name === 'JOB_COMPLETION_INDEX');
    expect(indexVar.valueFrom.fieldRef.fieldPath).toBe("metadata.annotations['batch.kubernetes.io/job-completion-index']");
    const env = { JOB_COMPLETION_INDEX: String(index), HOME: '/home/nobody' };
    expect(c.args.map((a: string) => kubeExpand(a, env))).toEqual(['sim', ...BASE.args, `--shard=${index}/4`, `--out=/results/shard-${index}`]);
  });

  it('takes the name, the claim and a trailing slash on the folder', () => {
    const job = parse(simJobManifest({ ...BASE, shards: 1, name: 'sweep-fraud-eps', claimName: 'team.results', outDir: '/mnt/out/' }));
    expect(validate(job).errors).toEqual([]);
    expect(job.metadata.name).toBe('sweep-fraud-eps');
    expect(job.spec.completions).toBe(1);
    const pod = job.spec.template.spec;
    expect(pod.volumes.find((v: any) => v.persistentVolumeClaim).persistentVolumeClaim.claimName).toBe('team.results');
    expect(pod.containers[0].args.slice(-2)).toEqual(['--shard=$(JOB_COMPLETION_INDEX)/1', '--out=/mnt/out/shard-$(JOB_COMPLETION_INDEX)']);
    expect(pod.containers[0].volumeMounts[0].mountPath).toBe('/mnt/out');
  });

  it.each([
    [{ shards: 0 }, /shards must be a whole number from 1/],
    [{ shards: 2.5 }, /shards must be a whole number/],
    [{ image: '' }, /image must be a non-empty/],
    [{ outDir: 'results' }, /outDir must be an absolute path/],
    [{ outDir: '/' }, /outDir must be an absolute path/],
    [{ name: 'Sweep_1' }, /name must be a DNS label/],
    [{ name: 'x'.repeat(64) }, /name must be a DNS label/],
    [{ claimName: 'Bad Claim' }, /claimName must be a DNS subdomain/],
    [{ args: ['--shard=1/2'] }, /must not contain --shard/],
    [{ args: ['--out', '/x'] }, /must not contain --out/],
  ] as [Partial<SimJobOptions>, RegExp][])('refuses %o naming the problem', (bad, message) => {
    expect(() => simJobManifest({ ...BASE, ...bad })).toThrow(message);
  });
});
