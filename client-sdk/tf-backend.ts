// Choosing the TensorFlow.js backend the client trains on. `auto` takes the fastest one installed:
// tfjs-node-gpu > tfjs-node > wasm > cpu. tfjs-node(-gpu) are optional dependencies whose install downloads
// libtensorflow and fails offline, so they are detected at run time; the wasm binaries ship inside
// @tensorflow/tfjs-backend-wasm and load from disk through Node's own resolution (no network). Under Node the
// wasm backend runs one thread (tfjs disables its worker threads there); parallelism comes from processes.
import * as tfjs from './tfjs.ts';

export type BackendName = 'auto' | 'wasm' | 'cpu' | 'tensorflow' | 'tensorflow-gpu';

export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'wasm', 'cpu', 'tensorflow', 'tensorflow-gpu'];

export interface SelectedBackend {
  /** The tfjs backend name actually running: 'tensorflow', 'wasm' or 'cpu'. */
  name: string;
  tf: typeof import('./tfjs.ts');
}

type Tf = typeof import('./tfjs.ts');

const NODE_PACKAGES: Record<'tensorflow' | 'tensorflow-gpu', string> = {
  tensorflow: '@tensorflow/tfjs-node',
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
};

const selections = new Map<BackendName, Promise<SelectedBackend>>();

/** Imports a package that may not be installed; undefined when it is absent or fails to load. */
async function optionalImport(specifier: string): Promise<Tf | undefined> {
  try {
    const module = (await import(specifier)) as Tf & { default?: Tf };
    return typeof module.setBackend === 'function' ? module : module.default;
  } catch {
    return undefined;
  }
}

async function activate(tf: Tf, backend: string): Promise<boolean> {
  try {
    const ok = await tf.setBackend(backend);
    if (!ok) return false;
    await tf.ready();
    return tf.getBackend() === backend;
  } catch {
    return false;
  }
}

/** The cpu backend prints a "install the node backend" banner on first use; we already chose knowingly. */
function silenceCpuBanner(tf: Tf): void {
  const cpu = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (cpu && 'firstUse' in cpu) cpu.firstUse = false;
}

async function tryNode(kind: 'tensorflow' | 'tensorflow-gpu'): Promise<SelectedBackend | undefined> {
  const tf = await optionalImport(NODE_PACKAGES[kind]);
  if (!tf) return undefined;
  // tfjs-node-gpu registers its backend under the same name, 'tensorflow'.
  return (await activate(tf, 'tensorflow')) ? { name: 'tensorflow', tf } : undefined;
}

async function tryWasm(): Promise<SelectedBackend | undefined> {
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    if (tfjs.getBackend() !== 'wasm' && !tfjs.findBackend('wasm')) wasm.setThreadsCount(1);
  } catch {
    return undefined;
  }
  return (await activate(tfjs, 'wasm')) ? { name: 'wasm', tf: tfjs } : undefined;
}

async function tryCpu(): Promise<SelectedBackend | undefined> {
  silenceCpuBanner(tfjs);
  if (!(await activate(tfjs, 'cpu'))) return undefined;
  silenceCpuBanner(tfjs);
  return { name: 'cpu', tf: tfjs };
}

async function select(name: BackendName): Promise<SelectedBackend> {
  switch (name) {
    case 'auto':
      for (const attempt of [() => tryNode('tensorflow-gpu'), () => tryNode('tensorflow'), tryWasm, tryCpu]) {
        const selected = await attempt();
        if (selected) return selected;
      }
      throw new Error('backend auto: no TensorFlow.js backend could be initialised (tried tensorflow-gpu, tensorflow, wasm, cpu)');
    case 'tensorflow':
    case 'tensorflow-gpu': {
      const selected = await tryNode(name);
      if (selected) return selected;
      throw new Error(
        `backend ${name}: ${NODE_PACKAGES[name]} is not installed or failed to load; install it with ` +
          `"npm install ${NODE_PACKAGES[name]}@4.22" (it downloads libtensorflow${name === 'tensorflow-gpu' ? ' and needs CUDA' : ''}), ` +
          'or use --backend wasm',
      );
    }
    case 'wasm': {
      const selected = await tryWasm();
      if (selected) return selected;
      throw new Error('backend wasm: @tensorflow/tfjs-backend-wasm did not initialise; reinstall it with "npm install @tensorflow/tfjs-backend-wasm@4.22", or use --backend cpu');
    }
    case 'cpu': {
      const selected = await tryCpu();
      if (selected) return selected;
      throw new Error('backend cpu: the TensorFlow.js cpu backend did not initialise');
    }
    default:
      throw new Error(`backend: expected one of ${BACKEND_NAMES.join('|')}, got ${JSON.stringify(name)}`);
  }
}

/**
 * Selects and initialises a backend. Idempotent: asking again for the same name returns the same object
 * (re-activating it if another backend was selected in between).
 */
export async function selectBackend(name: BackendName): Promise<SelectedBackend> {
  if (!BACKEND_NAMES.includes(name)) throw new Error(`backend: expected one of ${BACKEND_NAMES.join('|')}, got ${JSON.stringify(name)}`);
  let pending = selections.get(name);
  if (!pending) {
    pending = select(name);
    selections.set(name, pending);
    pending.catch(() => selections.delete(name));
    return pending;
  }
  const selected = await pending;
  if (selected.tf.getBackend() !== selected.name) await activate(selected.tf, selected.name);
  return selected;
}
