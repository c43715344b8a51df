// The public data schema of a federation: the columns of every institution's CSV, in order, with public
// bounds and a fixed map from each raw value to the model's input. Nothing in it is fitted on anyone's
// data, so preprocessing one row never depends on any other row: removing or adding a row of a CSV changes
// the transformed data by exactly that row (the neighbouring-dataset relation the privacy budget is about).
//
// A feature value is clipped to its public bounds [min, max], optionally passed through a public transform
// (`log1p` for heavy-tailed non-negative amounts), then mapped by a fixed affine map: by default the
// transformed bounds go to [-1, 1]; with a declared public `centre` and `scale` (in transformed units) the
// value becomes (t − centre) / scale. An empty cell becomes the declared `missing` value (raw units, inside
// the bounds) or, without one, the centre of the map (0).
//
// Both sides use this file: institutions preprocess with it, the coordinator compares institutions'
// schemas at registration (schemaHash, describeSchemaMismatch), and an exported model ships it as its
// preprocessing.
//
// The JSON form:
//   { "format": "dpfed-data-schema/1",
//     "columns": [ { "name": "Amount", "type": "number", "bounds": [0, 25691.16], "transform": "log1p" },
//                  { "name": "V1", "type": "number", "bounds": [-10, 10], "centre": 0, "scale": 2 },
//                  { "name": "label", "type": "label" } ] }
// `columns` lists every CSV column in file order; exactly one has type "label" (values 0 or 1).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { excerpt, quoted } from './text-excerpt.ts';

export const SCHEMA_FORMAT = 'dpfed-data-schema/1';
export const TRANSFORMS = ['none', 'log1p'] as const;
export type Transform = (typeof TRANSFORMS)[number];

export interface FeatureColumn {
  name: string;
  type: 'number';
  /** Public bounds of the raw value; values outside are clipped to them. */
  bounds: [number, number];
  transform: Transform;
  /** Public centre and scale of the transformed value; both or neither (then bounds map to [-1, 1]). */
  centre?: number;
  scale?: number;
  /** Raw value that stands in for an empty cell; absent: the map's centre (input 0). */
  missing?: number;
}

export interface LabelColumn {
  name: string;
  type: 'label';
}

export type SchemaColumn = FeatureColumn | LabelColumn;

export interface DataSchema {
  format: typeof SCHEMA_FORMAT;
  columns: SchemaColumn[];
}

export class SchemaError extends Error {}

const FEATURE_FIELDS = new Set(['name', 'type', 'bounds', 'transform', 'centre', 'scale', 'missing']);
const LABEL_FIELDS = new Set(['name', 'type']);

function columnLabel(index: number, name: unknown): string {
  return typeof name === 'string' ? `column ${index + 1} ${quoted(name, 60)}` : `column ${index + 1}`;
}

/** Validates a parsed JSON value as a schema; errors name the column (position and name) and the field. */
export function parseSchema(value: unknown, source = 'schema'): DataSchema {
  const fail = (message: string): never => {
    throw new SchemaError(`${source}: ${message}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('expected a JSON object with "format" and "columns"');
  const top = value as Record<string, unknown>;
  for (const key of Object.keys(top)) if (key !== 'format' && key !== 'columns') fail(`unknown field ${quoted(key, 60)} (the fields are format, columns)`);
  if (top.format !== SCHEMA_FORMAT) fail(`"format" must be "${SCHEMA_FORMAT}", got ${excerpt(JSON.stringify(top.format) ?? 'nothing', 60)}`);
  if (!Array.isArray(top.columns) || top.columns.length === 0) fail('"columns" must be a non-empty array');
  const names = new Set<string>();
  const columns: SchemaColumn[] = (top.columns as unknown[]).map((raw, i) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail(`column ${i + 1}: expected an object`);
    const c = raw as Record<string, unknown>;
    const at = columnLabel(i, c.name);
    if (typeof c.name !== 'string' || c.name.trim() === '' || c.name !== c.name.trim()) fail(`${at}: field "name" must be a non-empty string without surrounding spaces`);
    const name = c.name as string;
    if (names.has(name)) fail(`${at}: field "name": the column appears twice`);
    names.add(name);
    if (c.type === 'label') {
      for (const key of Object.keys(c)) if (!LABEL_FIELDS.has(key)) fail(`${at}: unknown field ${quoted(key, 60)} for a label column (it has name, type)`);
      return { name, type: 'label' } satisfies LabelColumn;
    }
    if (c.type !== 'number') fail(`${at}: field "type" must be "number" or "label", got ${excerpt(JSON.stringify(c.type) ?? 'nothing', 60)}`);
    for (const key of Object.keys(c)) if (!FEATURE_FIELDS.has(key)) fail(`${at}: unknown field ${quoted(key, 60)} (a number column has ${[...FEATURE_FIELDS].join(', ')})`);
    const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
    if (!Array.isArray(c.bounds) || c.bounds.length !== 2 || !c.bounds.every(finite)) fail(`${at}: field "bounds" must be [min, max] of two finite numbers`);
    const [min, max] = c.bounds as [number, number];
    if (!(min < max)) fail(`${at}: field "bounds": min ${min} must be below max ${max}`);
    const transform = (c.transform ?? 'none') as Transform;
    if (!TRANSFORMS.includes(transform)) fail(`${at}: field "transform" must be one of ${TRANSFORMS.join(', ')}, got ${excerpt(JSON.stringify(c.transform), 60)}`);
    if (transform === 'log1p' && !(min > -1)) fail(`${at}: field "bounds": log1p needs min > -1, got ${min}`);
    const column: FeatureColumn = { name, type: 'number', bounds: [min, max], transform };
    if ((c.centre === undefined) !== (c.scale === undefined)) fail(`${at}: fields "centre" and "scale" go together (give both or neither)`);
    if (c.centre !== undefined) {
      if (!finite(c.centre)) fail(`${at}: field "centre" must be a finite number`);
      if (!finite(c.scale) || !((c.scale as number) > 0)) fail(`${at}: field "scale" must be a positive finite number`);
      column.centre = c.centre as number;
      column.scale = c.scale as number;
    }
    if (c.missing !== undefined) {
      if (!finite(c.missing)) fail(`${at}: field "missing" must be a finite number (a raw value)`);
      const m = c.missing as number;
      if (m < min || m > max) fail(`${at}: field "missing": ${m} lies outside the bounds [${min}, ${max}]`);
      column.missing = m;
    }
    return column;
  });
  const labels = columns.filter((c) => c.type === 'label');
  if (labels.length !== 1) fail(`exactly one column must have type "label", found ${labels.length}`);
  if (columns.length < 2) fail('at least one feature column is needed besides the label');
  return { format: SCHEMA_FORMAT, columns };
}

/** Reads and validates a schema file; errors name the file, and the column and field at fault. */
export function readSchemaFile(path: string): DataSchema {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SchemaError(`cannot read ${path}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SchemaError(`${path}: not valid JSON: ${excerpt((error as Error).message)}`);
  }
  return parseSchema(value, path);
}

export function featureColumns(schema: DataSchema): FeatureColumn[] {
  return schema.columns.filter((c): c is FeatureColumn => c.type === 'number');
}

export function labelColumn(schema: DataSchema): LabelColumn {
  return schema.columns.find((c): c is LabelColumn => c.type === 'label')!;
}

/** Every field, in a fixed order with defaults filled in: two schemas that mean the same encode the same. */
function canonicalColumn(c: SchemaColumn): unknown[] {
  if (c.type === 'label') return [c.name, 'label'];
  return [c.name, 'number', c.bounds[0], c.bounds[1], c.transform, c.centre ?? null, c.scale ?? null, c.missing ?? null];
}

/**
 * SHA-256 (hex) of the canonical encoding: the format, then per column in order its name, type, bounds,
 * transform, centre, scale and missing value (JSON arrays; numbers as JavaScript's shortest round-trip
 * decimal, so the same double always encodes the same). Equal hashes mean identical preprocessing.
 */
export function schemaHash(schema: DataSchema): string {
  const canonical = JSON.stringify([SCHEMA_FORMAT, schema.columns.map(canonicalColumn)]);
  return createHash('sha256').update(canonical).digest('hex');
}

function describeColumn(c: SchemaColumn): string {
  if (c.type === 'label') return 'label';
  const parts = [`bounds [${c.bounds[0]}, ${c.bounds[1]}]`];
  if (c.transform !== 'none') parts.push(`transform ${c.transform}`);
  if (c.centre !== undefined) parts.push(`centre ${c.centre}, scale ${c.scale}`);
  if (c.missing !== undefined) parts.push(`missing ${c.missing}`);
  return `number, ${parts.join(', ')}`;
}

const MAX_LISTED = 8;

function joinDifferences(differences: string[]): string {
  const shown = differences.slice(0, MAX_LISTED).join('; ');
  return differences.length > MAX_LISTED ? `${shown}; and ${differences.length - MAX_LISTED} more` : shown;
}

/**
 * Null when both schemas preprocess identically; otherwise names every differing column (position and
 * name, what each side declares), at most a few in full.
 */
export function describeSchemaMismatch(expected: DataSchema, actual: DataSchema): string | null {
  if (schemaHash(expected) === schemaHash(actual)) return null;
  const differences: string[] = [];
  const common = Math.min(expected.columns.length, actual.columns.length);
  for (let i = 0; i < common; i++) {
    const e = expected.columns[i];
    const a = actual.columns[i];
    if (e.name !== a.name) differences.push(`column ${i + 1}: expected ${quoted(e.name, 60)}, got ${quoted(a.name, 60)}`);
    else if (JSON.stringify(canonicalColumn(e)) !== JSON.stringify(canonicalColumn(a))) {
      differences.push(`column ${i + 1} ${quoted(e.name, 60)}: expected ${describeColumn(e)}; got ${describeColumn(a)}`);
    }
  }
  if (expected.columns.length !== actual.columns.length) {
    const longer = expected.columns.length > actual.columns.length ? expected : actual;
    const extra = longer.columns.slice(common).map((c) => quoted(c.name, 60));
    differences.push(
      `expected ${expected.columns.length} columns, got ${actual.columns.length} (${longer === expected ? 'missing' : 'extra'}: ${extra.slice(0, MAX_LISTED).join(', ')}${extra.length > MAX_LISTED ? ', …' : ''})`,
    );
  }
  return joinDifferences(differences);
}

/** Null when a CSV header names exactly the schema's columns in its order; otherwise names the differences. */
export function describeHeaderMismatch(schema: DataSchema, header: string[]): string | null {
  const differences: string[] = [];
  const expected = schema.columns.map((c) => c.name);
  const common = Math.min(expected.length, header.length);
  for (let i = 0; i < common; i++) {
    if (expected[i] !== header[i]) differences.push(`column ${i + 1} is ${quoted(header[i], 60)}, the schema has ${quoted(expected[i], 60)}`);
  }
  if (header.length > expected.length) {
    const extra = header.slice(expected.length);
    differences.push(
      `${header.length} columns, the schema has ${expected.length} (not in the schema: ${extra
        .slice(0, MAX_LISTED)
        .map((n) => quoted(n, 60))
        .join(', ')}${extra.length > MAX_LISTED ? ', …' : ''})`,
    );
  } else if (header.length < expected.length) {
    const absent = expected.slice(header.length);
    differences.push(
      `${header.length} columns, the schema has ${expected.length} (absent: ${absent
        .slice(0, MAX_LISTED)
        .map((n) => quoted(n, 60))
        .join(', ')}${absent.length > MAX_LISTED ? ', …' : ''})`,
    );
  }
  return differences.length ? joinDifferences(differences) : null;
}

/** One feature column's fixed map, precomputed: clip → transform → a·t + b. */
export interface FeatureMap {
  min: number;
  max: number;
  log1p: boolean;
  a: number;
  b: number;
  /** The model input an empty cell becomes. */
  missingInput: number;
}

export function featureMap(c: FeatureColumn): FeatureMap {
  const log1p = c.transform === 'log1p';
  const t = (v: number) => (log1p ? Math.log1p(v) : v);
  let a: number;
  let b: number;
  if (c.centre !== undefined && c.scale !== undefined) {
    a = 1 / c.scale;
    b = -c.centre / c.scale;
  } else {
    const lo = t(c.bounds[0]);
    const hi = t(c.bounds[1]);
    a = 2 / (hi - lo);
    b = -1 - lo * a;
  }
  const map: FeatureMap = { min: c.bounds[0], max: c.bounds[1], log1p, a, b, missingInput: 0 };
  if (c.missing !== undefined) map.missingInput = mapFeature(map, c.missing);
  return map;
}

/** The model input of a raw value (NaN: a missing cell). Depends on nothing but the value and the schema. */
export function mapFeature(m: FeatureMap, raw: number): number {
  if (Number.isNaN(raw)) return m.missingInput;
  const clipped = raw < m.min ? m.min : raw > m.max ? m.max : raw;
  return m.a * (m.log1p ? Math.log1p(clipped) : clipped) + m.b;
}

/** The schema's maps in feature order, and where the label sits among the CSV columns. */
export function compileSchema(schema: DataSchema): { featureNames: string[]; maps: FeatureMap[]; labelIndex: number; columnCount: number; featureIndex: Int32Array } {
  const featureIndex = new Int32Array(schema.columns.length).fill(-1);
  const features = featureColumns(schema);
  let k = 0;
  schema.columns.forEach((c, i) => {
    if (c.type === 'number') featureIndex[i] = k++;
  });
  return {
    featureNames: features.map((c) => c.name),
    maps: features.map(featureMap),
    labelIndex: schema.columns.findIndex((c) => c.type === 'label'),
    columnCount: schema.columns.length,
    featureIndex,
  };
}
