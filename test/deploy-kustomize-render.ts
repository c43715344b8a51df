// Renders the kustomizations in deploy/k8s the way `kubectl kustomize` does, for the few kustomize
// features those files use, so the deployment tests run where no kustomize binary is installed (it is
// not in Debian's packages; kubectl, which embeds it, is not either).
//
// Supported, and nothing else: `resources` (YAML files, and folders holding a kustomization.yaml),
// `namespace`, `images` (name, newName, newTag, digest) and `patches` given by `path` as strategic-merge
// patches whose target is the patch's own kind and name. Any other field in a kustomization, or a
// `$patch` directive, throws: a manifest that starts using another feature fails the tests loudly
// instead of rendering differently from kustomize. Where kubectl is installed, test/deploy-k8s.test.ts
// also compares this rendering with `kubectl kustomize` object by object.
//
// The strategic merge follows the Kubernetes patch strategy of the fields these manifests patch: maps
// merge key by key (null deletes a key), lists of containers, env vars and volumes merge by `name`,
// volume mounts by `mountPath`, container ports by `containerPort`, in kustomize's order (the patch's
// elements first); every other list is replaced.
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
};

const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches']);

/** Merge keys of the lists that strategic merge patches merge element by element. */
const LIST_MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  ports: 'containerPort',
};

type ImageRule = { name: string; newName?: string; newTag?: string; digest?: string };

/** Reads every YAML document of a file; empty documents (a trailing `---`) are dropped. */
export function readYamlObjects(file: string): K8sObject[] {
  const docs = parseAllDocuments(fs.readFileSync(file, 'utf8'));
  const objects: K8sObject[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
    const value = doc.toJS();
    if (value !== null && value !== undefined) objects.push(value as K8sObject);
  }
  return objects;
}

/** The objects a kustomization folder renders to, in resource order. */
export function renderKustomization(dir: string): K8sObject[] {
  const file = path.join(dir, 'kustomization.yaml');
  const [k] = readYamlObjects(file);
  if (!k || k.kind !== 'Kustomization') throw new Error(`${file}: not a Kustomization`);
  for (const field of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.has(field)) throw new Error(`${file}: kustomize field "${field}" is not supported by this renderer`);
  }
  let objects: K8sObject[] = [];
  for (const resource of (k.resources as string[] | undefined) ?? []) {
    const target = path.resolve(dir, resource);
    objects.push(...(fs.statSync(target).isDirectory() ? renderKustomization(target) : readYamlObjects(target)));
  }
  for (const patch of (k.patches as Array<Record<string, unknown>> | undefined) ?? []) {
    const keys = Object.keys(patch);
    if (keys.length !== 1 || typeof patch.path !== 'string') throw new Error(`${file}: only "patches: - path: FILE" is supported, got ${JSON.stringify(patch)}`);
    for (const p of readYamlObjects(path.resolve(dir, patch.path))) {
      const index = objects.findIndex((o) => o.kind === p.kind && o.metadata.name === p.metadata.name);
      if (index < 0) throw new Error(`${file}: patch ${patch.path} targets ${p.kind}/${p.metadata.name}, which is not among the resources`);
      objects[index] = strategicMerge(objects[index], p) as K8sObject;
    }
  }
  const images = (k.images as ImageRule[] | undefined) ?? [];
  if (images.length > 0) objects = objects.map((o) => applyImages(o, images));
  if (typeof k.namespace === 'string') {
    objects = objects.map((o) => ({ ...o, metadata: { ...o.metadata, namespace: k.namespace as string } }));
  }
  return objects;
}

/** Strategic merge of `patch` into `base` (neither is modified). */
export function strategicMerge(base: unknown, patch: unknown, field = ''): unknown {
  if (isMap(patch) && '$patch' in patch) throw new Error(`$patch directives are not supported (at ${field || 'the top'})`);
  if (isMap(base) && isMap(patch)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete out[key];
      else out[key] = key in base ? strategicMerge(base[key], value, key) : value;
    }
    return out;
  }
  const mergeKey = LIST_MERGE_KEYS[field];
  if (mergeKey && Array.isArray(base) && Array.isArray(patch)) {
    // kustomize's order: the patch's elements first (merged into their base element), then the base
    // elements the patch does not name.
    const keyOf = (x: unknown) => (isMap(x) ? x[mergeKey] : undefined);
    const merged = patch.map((item) => {
      const match = base.find((b) => keyOf(b) !== undefined && keyOf(b) === keyOf(item));
      return match === undefined ? item : strategicMerge(match, item, field);
    });
    const named = new Set<unknown>(patch.map(keyOf).filter((k) => k !== undefined));
    return [...merged, ...base.filter((b) => !named.has(keyOf(b)))];
  }
  return patch;
}

/** The pod spec of a workload (Deployment, StatefulSet, Job), or undefined for other kinds. */
export function podSpecOf(o: K8sObject): Record<string, any> | undefined {
  const spec = o.spec as Record<string, any> | undefined;
  return spec?.template?.spec;
}

function applyImages(o: K8sObject, rules: ImageRule[]): K8sObject {
  const pod = podSpecOf(o);
  if (!pod) return o;
  const copy = structuredClone(o);
  const copyPod = podSpecOf(copy)!;
  for (const list of ['containers', 'initContainers']) {
    for (const c of (copyPod[list] as Array<{ image?: string }> | undefined) ?? []) {
      if (!c.image) continue;
      const { name, tag, digest } = splitImage(c.image);
      const rule = rules.find((r) => r.name === name);
      if (!rule) continue;
      const newName = rule.newName ?? name;
      if (rule.digest) c.image = `${newName}@${rule.digest}`;
      else if (rule.newTag) c.image = `${newName}:${rule.newTag}`;
      else c.image = `${newName}${digest ? `@${digest}` : tag ? `:${tag}` : ''}`;
    }
  }
  return copy;
}

function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  const at = image.indexOf('@');
  if (at >= 0) return { name: image.slice(0, at), digest: image.slice(at + 1) };
  const colon = image.lastIndexOf(':');
  // A colon before the last slash belongs to a registry host:port, not to a tag.
  if (colon > image.lastIndexOf('/')) return { name: image.slice(0, colon), tag: image.slice(colon + 1) };
  return { name: image };
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
