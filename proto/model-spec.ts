// The model architecture travels with every task (Task.model_spec, the ModelSpec message), so the
// coordinator and every institution always build the same network; a run stores it as JSON. Parameters are
// named tensors: `dense_<i>/kernel` [in, out] and `dense_<i>/bias` [out], row-major float32.
import type * as pb from './generated/dpfed/v1/federation.ts';
import { SeededRandom } from './seeded-random.ts';

export type Activation = 'relu' | 'tanh' | 'sigmoid' | 'linear';

export interface DenseLayerSpec {
  units: number;
  activation: Activation;
}

export interface ModelSpec {
  kind: 'logistic' | 'mlp';
  inputDim: number;
  /** Hidden layers; the output layer (1 unit, sigmoid on the logit) is implicit. Empty for logistic. */
  hidden: DenseLayerSpec[];
}

export interface ParameterShape {
  name: string;
  shape: number[];
}

export type NamedParameters = Map<string, Float32Array>;

const ACTIVATIONS: readonly Activation[] = ['relu', 'tanh', 'sigmoid', 'linear'];

/** Parses and validates a spec; throws an Error naming the bad field. */
export function parseModelSpec(input: unknown): ModelSpec {
  const spec = (typeof input === 'string' ? JSON.parse(input) : input) as Partial<ModelSpec>;
  if (!spec || typeof spec !== 'object') throw new Error('model spec: expected an object');
  if (spec.kind !== 'logistic' && spec.kind !== 'mlp') throw new Error(`model spec: kind must be "logistic" or "mlp", got ${JSON.stringify(spec.kind)}`);
  if (!Number.isInteger(spec.inputDim) || (spec.inputDim as number) < 1) throw new Error('model spec: inputDim must be a positive integer');
  const hidden = spec.hidden ?? [];
  if (!Array.isArray(hidden)) throw new Error('model spec: hidden must be an array');
  if (spec.kind === 'logistic' && hidden.length > 0) throw new Error('model spec: a logistic model has no hidden layers');
  hidden.forEach((layer, i) => {
    if (!Number.isInteger(layer?.units) || layer.units < 1) throw new Error(`model spec: hidden[${i}].units must be a positive integer`);
    if (!ACTIVATIONS.includes(layer.activation)) throw new Error(`model spec: hidden[${i}].activation must be one of ${ACTIVATIONS.join(', ')}`);
  });
  return { kind: spec.kind, inputDim: spec.inputDim as number, hidden: hidden.map((l) => ({ units: l.units, activation: l.activation })) };
}

const KINDS: readonly [ModelSpec['kind'], pb.ModelKind][] = [
  ['logistic', 'MODEL_KIND_LOGISTIC'],
  ['mlp', 'MODEL_KIND_MLP'],
];
const ACTIVATION_NAMES: readonly [Activation, pb.Activation][] = [
  ['relu', 'ACTIVATION_RELU'],
  ['tanh', 'ACTIVATION_TANH'],
  ['sigmoid', 'ACTIVATION_SIGMOID'],
  ['linear', 'ACTIVATION_LINEAR'],
];

/** The ModelSpec message of a spec. */
export function modelSpecMessage(spec: ModelSpec): pb.ModelSpec {
  const kind = KINDS.find(([k]) => k === spec.kind)?.[1] ?? 'MODEL_KIND_UNSPECIFIED';
  return { kind, inputDim: spec.inputDim, hidden: spec.hidden.map((l) => ({ units: l.units, activation: ACTIVATION_NAMES.find(([a]) => a === l.activation)?.[1] ?? 'ACTIVATION_UNSPECIFIED' })) };
}

/** The spec of a decoded ModelSpec message, validated as parseModelSpec does; throws an Error naming the bad field. */
export function modelSpecFromMessage(message: pb.ModelSpec | undefined): ModelSpec {
  if (!message) throw new Error('model spec: model_spec is required in a TRAIN or EVALUATE task');
  const kind = KINDS.find(([, k]) => k === message.kind)?.[0] ?? message.kind;
  const hidden = message.hidden.map((l) => ({ units: l.units, activation: ACTIVATION_NAMES.find(([, a]) => a === l.activation)?.[0] ?? l.activation }));
  return parseModelSpec({ kind, inputDim: message.inputDim, hidden });
}

/** MLP 30-64-32-1 style shorthand: "mlp:64,32" or "logistic". */
export function modelSpecFromShorthand(text: string, inputDim: number): ModelSpec {
  if (text === 'logistic') return { kind: 'logistic', inputDim, hidden: [] };
  const m = /^mlp:(\d+(?:,\d+)*)(?::(relu|tanh|sigmoid))?$/.exec(text);
  if (!m) throw new Error(`--model: expected "logistic" or "mlp:64,32[:relu]", got "${text}"`);
  const activation = (m[2] ?? 'relu') as Activation;
  return { kind: 'mlp', inputDim, hidden: m[1].split(',').map((u) => ({ units: Number(u), activation })) };
}

/** Layer widths, input first, output (1) last. */
export function layerWidths(spec: ModelSpec): number[] {
  return [spec.inputDim, ...spec.hidden.map((l) => l.units), 1];
}

export function parameterShapes(spec: ModelSpec): ParameterShape[] {
  const widths = layerWidths(spec);
  const shapes: ParameterShape[] = [];
  for (let i = 0; i + 1 < widths.length; i++) {
    shapes.push({ name: `dense_${i}/kernel`, shape: [widths[i], widths[i + 1]] });
    shapes.push({ name: `dense_${i}/bias`, shape: [widths[i + 1]] });
  }
  return shapes;
}

export function parameterCount(spec: ModelSpec): number {
  return parameterShapes(spec).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** Glorot-uniform kernels and zero biases, reproducible from the seed. */
export function initialParameters(spec: ModelSpec, random: SeededRandom): NamedParameters {
  const params: NamedParameters = new Map();
  for (const { name, shape } of parameterShapes(spec)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    if (shape.length === 2) {
      const limit = Math.sqrt(6 / (shape[0] + shape[1]));
      for (let i = 0; i < size; i++) values[i] = (random.next() * 2 - 1) * limit;
    }
    params.set(name, values);
  }
  return params;
}

/** Concatenates parameters in spec order into one flat vector (the unit of clipping and secure sum). */
export function flattenParameters(spec: ModelSpec, params: NamedParameters): Float32Array {
  const out = new Float32Array(parameterCount(spec));
  let offset = 0;
  for (const { name } of parameterShapes(spec)) {
    const values = params.get(name);
    if (!values) throw new Error(`missing parameter ${name}`);
    out.set(values, offset);
    offset += values.length;
  }
  return out;
}

/** The inverse of flattenParameters: views into `flat`, no copy. */
export function unflattenParameters(spec: ModelSpec, flat: Float32Array): NamedParameters {
  const params: NamedParameters = new Map();
  let offset = 0;
  for (const { name, shape } of parameterShapes(spec)) {
    const size = shape.reduce((a, b) => a * b, 1);
    params.set(name, flat.subarray(offset, offset + size));
    offset += size;
  }
  if (offset !== flat.length) throw new Error(`expected ${offset} parameters, got ${flat.length}`);
  return params;
}
