// Validation of Kubernetes objects against the JSON schemas vendored in deploy/k8s/schemas (Kubernetes
// v1.30, strict: an unknown field is an error), with ajv; shared by the tests of the deploy/k8s manifests
// and of the manifests dpfed generates.
import fs from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import type { K8sObject } from '../deploy-kustomize-render.ts';

const SCHEMAS = path.resolve(import.meta.dirname, '..', '..', 'deploy', 'k8s', 'schemas');

/** Schema file in deploy/k8s/schemas for each apiVersion/kind the manifests use. */
export const SCHEMA_FILES: Record<string, string> = {
  'apps/v1/StatefulSet': 'statefulset-apps-v1.json',
  'apps/v1/Deployment': 'deployment-apps-v1.json',
  'batch/v1/Job': 'job-batch-v1.json',
  'v1/Service': 'service-v1.json',
  'v1/PersistentVolumeClaim': 'persistentvolumeclaim-v1.json',
  'v1/ConfigMap': 'configmap-v1.json',
  'networking.k8s.io/v1/NetworkPolicy': 'networkpolicy-networking-v1.json',
};

export function schemaValidator(): (o: unknown) => { ok: boolean; errors: string[] } {
  const ajv = new Ajv({ allErrors: true, strict: false, logger: false });
  // The OpenAPI formats the Kubernetes schemas use; int32/int64 are range-checked.
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  ajv.addFormat('byte', /^[A-Za-z0-9+/]*={0,2}$/);
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => !Number.isNaN(Date.parse(s)) });
  const compiled = new Map<string, ValidateFunction>();
  return (o: unknown) => {
    const obj = o as K8sObject;
    const file = SCHEMA_FILES[`${obj.apiVersion}/${obj.kind}`];
    if (!file) return { ok: false, errors: [`no vendored schema for ${obj.apiVersion} ${obj.kind}`] };
    let validate = compiled.get(file);
    if (!validate) {
      validate = ajv.compile(JSON.parse(fs.readFileSync(path.join(SCHEMAS, file), 'utf8')));
      compiled.set(file, validate);
    }
    const ok = validate(o) as boolean;
    return { ok, errors: (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`) };
  };
}
