// Noise calibrations are pure functions of their request (target ε, δ, sample rate, steps, accountant, the
// events composed alongside), and each costs dozens of accountant evaluations. Institutions that share a
// process (a simulation, a host serving several of them) and a restarted institution ask the same ones
// again; this bounded memo answers a repeated request with the first answer. Only results are kept:
// a request that throws is computed, and throws, every time.
import { canonicalJson } from '@dpfed/proto/canonical-json';

/** Requests kept; the oldest is dropped first. */
const ENTRIES = 512;

const answers = new Map<string, unknown>();

/** compute() for `request` under `name`, or its earlier answer for an identical request. */
export function memoisedCalibration<T extends number | Readonly<Record<string, number>>>(name: string, request: object, compute: () => T): T {
  const key = `${name}:${canonicalJson(request)}`;
  if (answers.has(key)) {
    const answer = answers.get(key) as T;
    return typeof answer === 'number' ? answer : ({ ...(answer as object) } as T);
  }
  const answer = compute();
  if (answers.size >= ENTRIES) answers.delete(answers.keys().next().value as string);
  answers.set(key, typeof answer === 'number' ? answer : { ...(answer as object) });
  return answer;
}
