// The one place dpfed reads tensors through the tfjs-wasm backend's heap view (@tensorflow/tfjs-backend-wasm,
// pinned exactly in package.json, see "Internals we rely on" in README.md).
//
// tfjs's public way to read a tensor, dataSync(), copies its values out of the wasm heap into a fresh array.
// The wasm backend (BackendWasm) also has typedArrayFromHeap(tensor): a Float32Array view over the tensor's
// bytes in the wasm heap, no copy. It is a method of that class, not of tfjs's backend interface, so other
// backends lack it and a tfjs upgrade may change it. The hand-written MLP step (mlp-network.ts) reads every
// layer's output this way several times per step, where the copies would be a visible share of a step.
//
// Checked once per backend instance: the method must exist and, on a probe tensor, return a Float32Array
// holding exactly what dataSync() returns. Otherwise (another backend, or a tfjs-wasm whose method changed)
// every read takes dataSync(): slower, the same values. test/tfjs-wasm-heap.test.ts fails when the pinned
// tfjs-wasm no longer passes the check.
import type { Tensor } from './tfjs.ts';

type Tf = typeof import('./tfjs.ts');
type HeapReader = (t: Tensor) => Float32Array;

const readers = new WeakMap<object, HeapReader | null>();

/** The backend's heap view if it passes the check (cached per backend instance), else null. */
export function wasmHeapReader(tf: Tf): HeapReader | null {
  const backend = tf.backend() as unknown as { typedArrayFromHeap?: (t: Tensor) => unknown };
  const cached = readers.get(backend);
  if (cached !== undefined) return cached;
  let reader: HeapReader | null = null;
  if (typeof backend.typedArrayFromHeap === 'function') {
    const candidate: HeapReader = (t) => backend.typedArrayFromHeap!(t) as Float32Array;
    const probe = tf.tensor1d([1.5, -2.25, 3, 0.125, -7]);
    try {
      const view = candidate(probe);
      const copy = probe.dataSync();
      if (view instanceof Float32Array && view.length === copy.length && view.every((v, i) => v === copy[i])) reader = candidate;
    } catch {
      reader = null;
    } finally {
      probe.dispose();
    }
  }
  readers.set(backend, reader);
  return reader;
}

/**
 * The values of a float32 tensor: on a backend whose heap view passed the check, a view into the wasm heap
 * (no copy; valid only until tfjs next allocates, so use it at once), elsewhere dataSync().
 */
export function tensorValues(tf: Tf, t: Tensor): Float32Array {
  const reader = wasmHeapReader(tf);
  return reader ? reader(t) : (t.dataSync() as Float32Array);
}
