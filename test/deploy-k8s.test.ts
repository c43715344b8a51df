// The Kubernetes manifests in deploy/k8s: each overlay renders (test/deploy-kustomize-render.ts, and
// `kubectl kustomize` where kubectl is installed, which must agree), every object validates against the
// Kubernetes v1.30 JSON schemas vendored in deploy/k8s/schemas, and the pieces fit together: the
// coordinator's database is on its volume claim and its probes on the metrics port, the GPU overlay asks
// for GPU nodes and a GPU, the sweep is an Indexed Job whose shard count matches its completions.
import { command as simCommand } from 'dpfed/sim-command';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { command as clientCommand } from '@dpfed/client/client-command';
import { command as coordinatorCommand } from 'dpfed/coordinator-command';
import { parseFlags, type CommandSpec } from '@dpfed/proto/command-flags';
import { runConfigFromFlags } from '@dpfed/coordinator/run-flags';
import { featureColumns, labelColumn, readSchemaFile, schemaHash } from '@dpfed/proto/data-schema';
import { podSpecOf, renderKustomization, strategicMerge, type K8sObject } from './deploy-kustomize-render.ts';
import { SCHEMA_FILES, schemaValidator } from './helpers/k8s-schema-validator.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const K8S = path.join(ROOT, 'deploy', 'k8s');
const OVERLAYS = ['wasm', 'gpu'] as const;
const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, renderKustomization(path.join(K8S, 'overlays', o))])) as Record<(typeof OVERLAYS)[number], K8sObject[]>;

const validateObject = schemaValidator();

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`${kind}/${name} not rendered`);
  return o;
}
const container = (o: K8sObject) => podSpecOf(o)!.containers[0];
const argValue = (args: string[], flag: string) => args.find((a) => a.startsWith(`--${flag}=`))?.slice(flag.length + 3);
const envValue = (c: any, name: string) => (c.env ?? []).find((e: any) => e.name === name)?.value;
const mountFor = (c: any, file: string) => (c.volumeMounts ?? []).find((m: any) => file.startsWith(`${m.mountPath}/`));
/**
 * Flags the manifests pass that other parts of Issue 15 and its neighbours add to dpfed (mutual TLS, the
 * console, the health and metrics port). Until a command declares one, the argument check below skips it;
 * once declared, it is parsed like every other flag.
 */
const FLAGS_ADDED_ELSEWHERE: Record<string, string[]> = {
  coordinator: ['tls-cert', 'tls-key', 'tls-ca', 'console-port', 'metrics-port'],
  client: ['tls-ca', 'tls-cert', 'tls-key'],
};

/** The container's args with every $(VAR) replaced from its env and the ConfigMaps it loads. */
function expandedArgs(objects: K8sObject[], workload: K8sObject, podValues: Record<string, string> = {}): string[] {
  const c = container(workload);
  const values: Record<string, string> = { ...podValues };
  for (const from of c.envFrom ?? []) Object.assign(values, (find(objects, 'ConfigMap', from.configMapRef.name) as any).data);
  for (const e of c.env ?? []) if (typeof e.value === 'string') values[e.name] = e.value;
  return (c.args as string[]).map((a) =>
    a.replace(/\$\(([A-Z0-9_]+)\)/g, (_, name: string) => {
      if (!(name in values)) throw new Error(`${workload.metadata.name}: $(${name}) has no value`);
      return values[name];
    }),
  );
}

/**
 * A file an argument names inside a ConfigMap volume of `workload`, written to a temp file (its content is
 * the ConfigMap's key of that name) so the command can read it as the pod would.
 */
function mountedFile(objects: K8sObject[], workload: K8sObject, file: string): string {
  const c = container(workload);
  const mount = mountFor(c, file);
  const volume = podSpecOf(workload)!.volumes.find((v: any) => v.name === mount.name);
  expect(volume?.configMap, `${workload.metadata.name}: ${file} is not on a ConfigMap volume`).toBeDefined();
  const data = (find(objects, 'ConfigMap', volume.configMap.name) as any).data;
  const key = file.slice(mount.mountPath.length + 1);
  expect(data[key], `${volume.configMap.name} has no key ${key}`).toBeDefined();
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dpfed-k8s-')), key);
  fs.writeFileSync(out, data[key]);
  return out;
}

function acceptedBy(command: CommandSpec, args: string[]) {
  const declared = new Set(command.flags.map((f) => f.name));
  const pending = FLAGS_ADDED_ELSEWHERE[command.name] ?? [];
  const kept = args.filter((a) => {
    const name = a.slice(2).split('=')[0];
    return declared.has(name) || !pending.includes(name);
  });
  return parseFlags(command, kept);
}

const hasKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;

describe('deploy/k8s manifests', () => {
  it.each(OVERLAYS)('overlay %s: every object validates against the Kubernetes v1.30 schemas', (overlay) => {
    const objects = rendered[overlay];
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'ConfigMap/dpfed-coordinator',
      'ConfigMap/dpfed-coordinator-schema',
      'ConfigMap/dpfed-institution',
      'ConfigMap/dpfed-institution-schema',
      'Deployment/dpfed-institution',
      'Job/dpfed-sim',
      'NetworkPolicy/dpfed-institution-no-ingress',
      'PersistentVolumeClaim/dpfed-institution-data',
      'PersistentVolumeClaim/dpfed-institution-keys',
      'PersistentVolumeClaim/dpfed-institution-ledger',
      'PersistentVolumeClaim/dpfed-sim-results',
      'Service/dpfed-coordinator',
      'Service/dpfed-coordinator-headless',
      'StatefulSet/dpfed-coordinator',
    ]);
    for (const o of objects) {
      const result = validateObject(o);
      expect(result.errors, `${overlay}: ${o.kind}/${o.metadata.name}`).toEqual([]);
      expect(o.metadata.namespace).toBe('dpfed');
    }
  });

  it('the schemas are strict: a misspelt field, a wrong type and a bad enum value are refused', () => {
    const job = structuredClone(find(rendered.wasm, 'Job', 'dpfed-sim')) as any;
    job.spec.completionsMode = 'Indexed';
    expect(validateObject(job).ok).toBe(false);
    const sts = structuredClone(find(rendered.wasm, 'StatefulSet', 'dpfed-coordinator')) as any;
    sts.spec.replicas = 'one';
    expect(validateObject(sts).ok).toBe(false);
    const svc = structuredClone(find(rendered.wasm, 'Service', 'dpfed-coordinator')) as any;
    svc.spec.ports[0].port = 2 ** 40;
    expect(validateObject(svc).ok).toBe(false);
  });

  it.skipIf(!hasKubectl)('the renderer agrees with `kubectl kustomize` on every overlay', () => {
    for (const overlay of OVERLAYS) {
      const out = execFileSync('kubectl', ['kustomize', path.join(K8S, 'overlays', overlay)], { encoding: 'utf8' });
      const theirs = parseAllDocuments(out).map((d) => d.toJS() as K8sObject);
      const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
      const byKey = (list: K8sObject[]) => Object.fromEntries(list.map((o) => [key(o), o]));
      expect(byKey(rendered[overlay]), overlay).toEqual(byKey(theirs));
    }
  });

  it('the renderer merges lists by their Kubernetes merge key and replaces the others', () => {
    const base = {
      spec: {
        containers: [
          {
            name: 'a',
            env: [
              { name: 'X', value: '1' },
              { name: 'Y', value: '2' },
            ],
            args: ['p', 'q'],
          },
        ],
        tolerations: [{ key: 'k' }],
      },
    };
    const patch = { spec: { containers: [{ name: 'a', env: [{ name: 'Y', value: '3' }], args: ['r'] }, { name: 'b' }], tolerations: [{ key: 'gpu' }] } };
    expect(strategicMerge(base, patch)).toEqual({
      spec: {
        containers: [
          {
            name: 'a',
            env: [
              { name: 'Y', value: '3' },
              { name: 'X', value: '1' },
            ],
            args: ['r'],
          },
          { name: 'b' },
        ],
        tolerations: [{ key: 'gpu' }],
      },
    });
  });

  it('coordinator: one replica, its SQLite database and keys on volume claims, TLS secret mounted, probes on the metrics port', () => {
    for (const overlay of OVERLAYS) {
      const sts = find(rendered[overlay], 'StatefulSet', 'dpfed-coordinator') as any;
      expect(sts.spec.replicas).toBe(1);
      const c = container(sts);
      const args: string[] = c.args;
      expect(args[0]).toBe('coordinator');
      expect(argValue(args, 'host')).toBe('0.0.0.0');
      expect(argValue(args, 'exit-when-done')).toBe('false');
      const claims = sts.spec.volumeClaimTemplates.map((t: any) => t.metadata.name);
      // the database file lies under a mount of a volume claim template, not on the container's disk
      const dbMount = mountFor(c, argValue(args, 'db')!);
      expect(claims).toContain(dbMount.name);
      expect(claims).toContain(mountFor(c, `${envValue(c, 'DPFED_KEY_DIR')}/key`).name);
      expect(dbMount.name).not.toBe(mountFor(c, `${envValue(c, 'DPFED_KEY_DIR')}/key`).name);
      for (const t of sts.spec.volumeClaimTemplates) expect(t.spec.accessModes).toEqual(['ReadWriteOnce']);
      // TLS: the three files come from the secret dpfed-coordinator-tls, mounted read-only
      for (const flag of ['tls-cert', 'tls-key', 'tls-ca']) {
        const m = mountFor(c, argValue(args, flag)!);
        expect(m.readOnly, flag).toBe(true);
        const volume = podSpecOf(sts)!.volumes.find((v: any) => v.name === m.name);
        expect(volume.secret.secretName).toBe('dpfed-coordinator-tls');
      }
      // ports and probes
      const ports = Object.fromEntries(c.ports.map((p: any) => [p.name, p.containerPort]));
      expect(ports).toEqual({ grpc: 50051, console: 8080, metrics: 9464 });
      expect(argValue(args, 'port')).toBe('50051');
      expect(argValue(args, 'metrics-port')).toBe('9464');
      expect(argValue(args, 'console-port')).toBe('8080');
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
      // the coordinator does not train: no GPU in any overlay
      expect(JSON.stringify(sts)).not.toContain('nvidia.com/gpu');
      // the Service exposes the named ports and selects exactly the coordinator's pods
      const svc = find(rendered[overlay], 'Service', 'dpfed-coordinator') as any;
      expect(svc.spec.ports.map((p: any) => [p.name, p.port, p.targetPort])).toEqual([
        ['grpc', 50051, 'grpc'],
        ['console', 8080, 'console'],
        ['metrics', 9464, 'metrics'],
      ]);
      expect(svc.spec.selector).toEqual(sts.spec.selector.matchLabels);
      const headless = find(rendered[overlay], 'Service', 'dpfed-coordinator-headless') as any;
      expect(sts.spec.serviceName).toBe(headless.metadata.name);
      expect(headless.spec.clusterIP).toBe('None');
    }
  });

  it('institution: data mounted read-only, ledger and keys on their own claims, its TLS secret named after its id, no inbound traffic', () => {
    for (const overlay of OVERLAYS) {
      const objects = rendered[overlay];
      const dep = find(objects, 'Deployment', 'dpfed-institution') as any;
      const pod = podSpecOf(dep)!;
      const c = container(dep);
      const config = (find(objects, 'ConfigMap', 'dpfed-institution') as any).data;
      expect(dep.spec.replicas).toBe(1);
      expect(dep.spec.strategy.type).toBe('Recreate');
      const claimOf = (file: string) => pod.volumes.find((v: any) => v.name === mountFor(c, file).name).persistentVolumeClaim;
      const dataFile = argValue(c.args, 'data')!.replace('$(DPFED_DATA_FILE)', config.DPFED_DATA_FILE);
      expect(mountFor(c, dataFile).readOnly).toBe(true);
      expect(claimOf(dataFile)).toEqual({ claimName: 'dpfed-institution-data', readOnly: true });
      expect(claimOf(argValue(c.args, 'ledger')!).claimName).toBe('dpfed-institution-ledger');
      expect(claimOf(argValue(c.args, 'identity')!).claimName).toBe('dpfed-institution-keys');
      const tls = pod.volumes.find((v: any) => v.name === mountFor(c, argValue(c.args, 'tls-cert')!).name);
      expect(tls.secret.secretName).toBe(`dpfed-${config.DPFED_INSTITUTION_ID}-tls`);
      // outbound only: no Service selects the institution's pods, and it declares no ports
      for (const svc of objects.filter((o) => o.kind === 'Service') as any[]) {
        expect(Object.entries(svc.spec.selector).every(([k, v]) => pod && dep.spec.template.metadata.labels[k] === v)).toBe(false);
      }
      expect(c.ports).toBeUndefined();
      // and a NetworkPolicy admits no inbound traffic to them
      const policy = find(objects, 'NetworkPolicy', 'dpfed-institution-no-ingress') as any;
      expect(policy.spec.podSelector.matchLabels).toEqual(dep.spec.selector.matchLabels);
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      expect(policy.spec.ingress).toEqual([]);
    }
  });

  it('gpu overlay: the institution and the sweep select GPU nodes, tolerate their taint, take one GPU each and run the GPU image', () => {
    for (const [kind, name] of [
      ['Deployment', 'dpfed-institution'],
      ['Job', 'dpfed-sim'],
    ] as const) {
      const gpu = find(rendered.gpu, kind, name);
      const pod = podSpecOf(gpu)!;
      const c = container(gpu);
      expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
      expect(pod.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
      expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
      expect(c.resources.limits.memory).toBeDefined();
      expect(c.image).toBe('dpfed:0.1.0-gpu');
      expect(envValue(c, 'DPFED_BACKEND')).toBe('tensorflow-gpu');
      expect(argValue(c.args, 'backend')).toBe('$(DPFED_BACKEND)');

      const wasm = find(rendered.wasm, kind, name);
      expect(podSpecOf(wasm)!.nodeSelector).toBeUndefined();
      expect(podSpecOf(wasm)!.tolerations).toBeUndefined();
      expect(JSON.stringify(wasm)).not.toContain('nvidia.com/gpu');
      expect(container(wasm).image).toBe('dpfed:0.1.0-wasm');
      expect(envValue(container(wasm), 'DPFED_BACKEND')).toBe('wasm');
    }
    expect(container(find(rendered.gpu, 'StatefulSet', 'dpfed-coordinator')).image).toBe('dpfed:0.1.0-wasm');
  });

  it('the sweep is an Indexed Job: one shard per completion index, N equal to completions, results on a shared volume', () => {
    for (const overlay of OVERLAYS) {
      const job = find(rendered[overlay], 'Job', 'dpfed-sim') as any;
      const c = container(job);
      expect(job.spec.completionMode).toBe('Indexed');
      expect(podSpecOf(job)!.restartPolicy).toBe('Never');
      expect(c.args[0]).toBe('sim');
      expect(argValue(c.args, 'shard')).toBe('$(JOB_COMPLETION_INDEX)/$(DPFED_SIM_SHARDS)');
      expect(Number(envValue(c, 'DPFED_SIM_SHARDS'))).toBe(job.spec.completions);
      const index = c.env.find((e: any) => e.name === 'JOB_COMPLETION_INDEX');
      expect(index.valueFrom.fieldRef.fieldPath).toBe("metadata.annotations['batch.kubernetes.io/job-completion-index']");
      const out = argValue(c.args, 'out')!;
      expect(out).toContain('$(JOB_COMPLETION_INDEX)');
      const volume = podSpecOf(job)!.volumes.find((v: any) => v.name === mountFor(c, out).name);
      const claim = find(rendered[overlay], 'PersistentVolumeClaim', volume.persistentVolumeClaim.claimName) as any;
      expect(claim.spec.accessModes).toEqual(['ReadWriteMany']);
    }
  });

  it("every $(VAR) in a container's args is defined by its env or by a ConfigMap it loads, and every ConfigMap key is used", () => {
    for (const overlay of OVERLAYS) {
      const objects = rendered[overlay];
      const used = new Set<string>();
      for (const w of objects.filter((o) => podSpecOf(o))) {
        const c = container(w);
        const defined = new Set<string>((c.env ?? []).map((e: any) => e.name));
        for (const from of c.envFrom ?? []) {
          const cm = find(objects, 'ConfigMap', from.configMapRef.name) as any;
          for (const k of Object.keys(cm.data)) defined.add(k);
        }
        for (const arg of c.args as string[]) {
          // a ConfigMap mounted as files is used when an argument names one of its files
          for (const v of podSpecOf(w)!.volumes ?? []) {
            if (!v.configMap) continue;
            const mount = (c.volumeMounts ?? []).find((m: any) => m.name === v.name);
            for (const k of Object.keys((find(objects, 'ConfigMap', v.configMap.name) as any).data)) if (mount && arg.endsWith(`=${mount.mountPath}/${k}`)) used.add(k);
          }
          for (const [, name] of arg.matchAll(/\$\(([A-Z0-9_]+)\)/g)) {
            expect(defined.has(name), `${w.metadata.name}: ${arg}`).toBe(true);
            used.add(name);
          }
        }
      }
      for (const cm of objects.filter((o) => o.kind === 'ConfigMap') as any[]) {
        for (const k of Object.keys(cm.data)) expect(used.has(k), `${cm.metadata.name}.${k} is never passed to dpfed`).toBe(true);
      }
    }
  });

  it("the coordinator's and the institution's arguments, their variables filled in, are accepted by `dpfed coordinator` and `dpfed client`", () => {
    for (const overlay of OVERLAYS) {
      const objects = rendered[overlay];
      const coordinatorArgs = expandedArgs(objects, find(objects, 'StatefulSet', 'dpfed-coordinator'));
      expect(coordinatorArgs[0]).toBe('coordinator');
      const coordinator = acceptedBy(coordinatorCommand, coordinatorArgs.slice(1));
      const run = runConfigFromFlags({ ...coordinator, schema: mountedFile(objects, find(objects, 'StatefulSet', 'dpfed-coordinator'), String(coordinator.schema)) });
      // the run's schema comes from its ConfigMap, and the institution mounts the same one (equal hashes)
      expect(run.schema).toBeDefined();
      expect(run.modelSpec.inputDim).toBe(featureColumns(run.schema!).length);
      expect(run.task.privacy.mode).toBe('record');
      expect(run.task.aggregation).toBe('secagg');
      expect(coordinator.exitWhenDone).toBe(false);

      const clientArgs = expandedArgs(objects, find(objects, 'Deployment', 'dpfed-institution'));
      expect(clientArgs[0]).toBe('client');
      const client = acceptedBy(clientCommand, clientArgs.slice(1));
      expect(client.backend).toBe(overlay === 'gpu' ? 'tensorflow-gpu' : 'wasm');
      expect(client.institution).toBe('bank-a');
      const institutionSchema = readSchemaFile(mountedFile(objects, find(objects, 'Deployment', 'dpfed-institution'), String(client.schema)));
      expect(schemaHash(institutionSchema)).toBe(schemaHash(run.schema!));
      expect(client.labelColumn).toBe(labelColumn(institutionSchema).name);
    }
    // a misspelt flag is refused, not skipped
    expect(() => acceptedBy(coordinatorCommand, ['--min-client=3'])).toThrow(/unknown flag --min-client/);
  });

  it("the sweep's arguments, their variables filled in, are accepted by `dpfed sim`, one shard per completion index", () => {
    for (const overlay of OVERLAYS) {
      const objects = rendered[overlay];
      const job = find(objects, 'Job', 'dpfed-sim') as any;
      // the pod's completion index comes from the downward API: pod 3 of the Job
      const args = expandedArgs(objects, job, { JOB_COMPLETION_INDEX: '3' });
      expect(args[0]).toBe('sim');
      const sim = acceptedBy(simCommand, args.slice(1));
      expect(sim.backend).toBe(overlay === 'gpu' ? 'tensorflow-gpu' : 'wasm');
      expect(sim.resume).toBe(true);
      expect(String(sim.data)).toBe('synthetic:fraud');
      expect(String(sim.shard)).toBe(`3/${job.spec.completions}`);
      expect(String(sim.out)).toBe('/results/shard-3');
    }
  });

  it("every object carries its component label (so `kubectl apply -l` picks one party's part), selectors match their pods", () => {
    const components = new Set<string>();
    for (const o of rendered.gpu as any[]) {
      const component = o.metadata.labels?.['app.kubernetes.io/component'];
      expect(['coordinator', 'institution', 'sim'], `${o.kind}/${o.metadata.name}`).toContain(component);
      components.add(component);
      if (o.spec?.selector?.matchLabels) {
        for (const [k, v] of Object.entries(o.spec.selector.matchLabels)) expect(o.spec.template.metadata.labels[k]).toBe(v);
      }
      // the pods that run dpfed do so as the image's unprivileged user, on a read-only root filesystem
      const pod = podSpecOf(o);
      if (pod) {
        expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001 });
        expect(container(o).securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
        const tmp = mountFor(container(o), '/tmp/x');
        expect(pod.volumes.find((v: any) => v.name === tmp.name).emptyDir).toEqual({});
      }
    }
    expect([...components].sort()).toEqual(['coordinator', 'institution', 'sim']);
    // the user id the manifests run as is the one the Dockerfile creates
    expect(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/^USER 10001:10001$/m);
  });

  it('the vendored schemas are the files deploy/k8s/schemas/README.md lists, with their checksums', async () => {
    const { createHash } = await import('node:crypto');
    const readme = fs.readFileSync(path.join(K8S, 'schemas', 'README.md'), 'utf8');
    const files = fs
      .readdirSync(path.join(K8S, 'schemas'))
      .filter((f) => f.endsWith('.json'))
      .sort();
    expect(files).toEqual(Object.values(SCHEMA_FILES).sort());
    for (const f of files) {
      const sha = createHash('sha256')
        .update(fs.readFileSync(path.join(K8S, 'schemas', f)))
        .digest('hex');
      expect(readme, f).toContain(`${sha}  ${f}`);
    }
  });
});
