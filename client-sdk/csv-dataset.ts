// Reads an institution's CSV as a stream (csv-parse), one row at a time, into growing typed arrays: the
// file is never held in memory, only the model inputs are (n × features float32). Each row is
// preprocessed by the public schema alone (proto/data-schema.ts) and sent to the training or the
// validation split by its own keyed hash (data-split.ts), so a row's treatment depends on nothing but
// the row. Training rows keep their file order; DP-SGD draws its batches by Poisson sampling, which
// treats every row alike whatever its position.
//
// The header must name exactly the schema's columns in its order; it is checked before any row is read.
// An empty cell is a missing value (the schema's default replaces it); labels are 0 or 1. Errors name the
// source, the line and the column, and quote at most 200 characters of a cell, line or header.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { parse, CsvError as ParserError } from 'csv-parse';
import { compileSchema, describeHeaderMismatch, mapFeature, schemaHash, type DataSchema } from '@dpfed/proto/data-schema';
import { excerpt, quoted } from '@dpfed/proto/text-excerpt';
import { canonicalRowText, type SplitRule } from './data-split.ts';

export interface Dataset {
  featureNames: string[];
  /** Row-major model inputs, n × dim. */
  x: Float32Array;
  /** Labels, 0 or 1. */
  y: Float32Array;
  n: number;
  dim: number;
  /** Each row's canonical CSV text, in row order; only when the loader was asked to keep it. */
  rowText?: string[];
}

export class CsvError extends Error {}

/** A CSV file path, or text in memory with the name used in messages. */
export type CsvSource = string | { text: string; name: string };

/**
 * A line (a row or the header) longer than this many bytes is refused before it reaches the parser. A
 * row of numbers is far shorter; the bound keeps memory and time per row small (the parser's cost grows
 * faster than a record's length: a 4 MB record takes seconds) and stops a file without line breaks early.
 */
export const MAX_LINE_BYTES = 1024 * 1024;

/** Passes bytes through, failing as soon as a physical line exceeds MAX_LINE_BYTES (linear in the input). */
class LineLengthGuard extends Transform {
  private line = 1;
  private length = 0;

  constructor(private readonly name: string) {
    super();
  }

  override _transform(chunk: Buffer | string, _encoding: BufferEncoding, done: TransformCallback): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let from = 0;
    for (;;) {
      const newline = bytes.indexOf(10, from);
      const end = newline < 0 ? bytes.length : newline;
      this.length += end - from;
      if (this.length > MAX_LINE_BYTES) {
        done(new CsvError(`${this.name}: line ${this.line}: longer than ${MAX_LINE_BYTES} bytes (a row or the header must be shorter)`));
        return;
      }
      if (newline < 0) break;
      this.line++;
      this.length = 0;
      from = newline + 1;
    }
    done(null, bytes);
  }
}

function sourceName(source: CsvSource): string {
  return typeof source === 'string' ? source : source.name;
}

function openSource(source: CsvSource): Readable {
  return typeof source === 'string' ? createReadStream(source) : Readable.from([source.text]);
}

export interface CsvVisitor {
  /** The header's cells (spaces around them removed). */
  header(cells: string[]): void;
  /** A data row (cells with surrounding spaces removed; as many as the header); `line` is 1-based. */
  row(cells: string[], line: number): void;
}

/**
 * Streams the CSV through `visitor`: the header, then every data row. Refuses a row whose field count
 * differs from the header's and an empty line between rows (empty lines at the end are ignored). Returns
 * the number of data rows.
 */
export async function streamCsv(source: CsvSource, visitor: CsvVisitor): Promise<number> {
  const name = sourceName(source);
  const input = openSource(source);
  const guard = new LineLengthGuard(name);
  const parser = parse({ relax_column_count: true, skip_empty_lines: false, info: true, bom: true, max_record_size: MAX_LINE_BYTES });
  let header: string[] | null = null;
  let rows = 0;
  let pendingEmptyLine = 0;
  const readError = new Promise<never>((_, reject) => {
    input.once('error', (error) => reject(new CsvError(`cannot read ${name}: ${(error as Error).message}`)));
    guard.once('error', reject);
  });
  readError.catch(() => undefined);
  const records = input.pipe(guard).pipe(parser);
  try {
    const consume = (async () => {
      for await (const { record, info } of records as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
        const line = info.lines;
        if (record.length === 1 && record[0].trim() === '') {
          if (header === null) throw new CsvError(`${name}: line ${line}: expected a header row, got an empty line`);
          pendingEmptyLine ||= line;
          continue;
        }
        if (pendingEmptyLine) throw new CsvError(`${name}: line ${pendingEmptyLine}: empty line`);
        for (let i = 0; i < record.length; i++) record[i] = record[i].trim();
        if (header === null) {
          header = record;
          visitor.header(record);
          continue;
        }
        if (record.length !== header.length) throw new CsvError(`${name}: line ${line}: expected ${header.length} fields, got ${record.length}`);
        visitor.row(record, line);
        rows++;
      }
    })();
    consume.catch(() => undefined); // when reading fails first, the abandoned parse must not go unhandled
    await Promise.race([consume, readError]);
  } catch (error) {
    input.destroy();
    guard.destroy();
    parser.destroy();
    if (error instanceof CsvError) throw error;
    if (error instanceof ParserError) throw new CsvError(`${name}: ${excerpt(error.message)}`);
    throw new CsvError(`${name}: ${excerpt((error as Error).message)}`);
  }
  if (header === null || rows === 0) throw new CsvError(`${name}: expected a header row and at least one data row`);
  return rows;
}

/** Row-major float32 rows that grow by half when full (no intermediate arrays of rows). */
class GrowingRows {
  private x: Float32Array;
  private y: Float32Array;
  n = 0;
  readonly rowText: string[] | undefined;

  constructor(
    readonly dim: number,
    keepText: boolean,
  ) {
    this.x = new Float32Array(1024 * dim);
    this.y = new Float32Array(1024);
    this.rowText = keepText ? [] : undefined;
  }

  /** Makes room for `rows` rows at once (one copy instead of many growth steps). */
  reserve(rows: number): void {
    if (rows <= this.y.length) return;
    const x = new Float32Array(rows * this.dim);
    x.set(this.x.subarray(0, this.n * this.dim));
    const y = new Float32Array(rows);
    y.set(this.y.subarray(0, this.n));
    this.x = x;
    this.y = y;
  }

  append(features: Float32Array, label: number, text: string): void {
    if (this.n === this.y.length) this.reserve(Math.ceil(this.y.length * 1.5));
    this.x.set(features, this.n * this.dim);
    this.y[this.n] = label;
    this.rowText?.push(text);
    this.n++;
  }

  /** The rows as a Dataset; views of the buffers (no copy). */
  finish(featureNames: string[]): Dataset {
    const out: Dataset = { featureNames, x: this.x.subarray(0, this.n * this.dim), y: this.y.subarray(0, this.n), n: this.n, dim: this.dim };
    if (this.rowText) out.rowText = this.rowText;
    return out;
  }
}

export interface InstitutionData {
  schema: DataSchema;
  schemaHash: string;
  train: Dataset;
  validation: Dataset;
  /** Data rows read (train + validation). */
  rows: number;
}

export interface LoadOptions {
  schema: DataSchema;
  /** Decides each row's split from its canonical text alone (data-split.ts RowSplitter). */
  splitter: SplitRule;
  /** Keep each row's canonical text in the datasets (for tests and audits; costs memory). */
  keepRowText?: boolean;
}

const ESTIMATE_AFTER_ROWS = 2000;

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0; // streamCsv reports the unreadable file
  }
}

function parseLabel(cell: string): number {
  if (cell === '0' || cell === '0.0') return 0;
  if (cell === '1' || cell === '1.0') return 1;
  return -1;
}

/**
 * Loads the institution's CSV: header checked against the schema, every row mapped by the schema and
 * placed in the training or validation split by its keyed hash.
 */
export async function loadInstitutionCsv(source: CsvSource, options: LoadOptions): Promise<InstitutionData> {
  const name = sourceName(source);
  const { featureNames, maps, labelIndex, featureIndex } = compileSchema(options.schema);
  const dim = maps.length;
  const columnNames = options.schema.columns.map((c) => c.name);
  const keep = Boolean(options.keepRowText);
  const train = new GrowingRows(dim, keep);
  const validation = new GrowingRows(dim, keep);
  const features = new Float32Array(dim);
  // After the first rows, both splits reserve what the whole file will need, estimated from its size and
  // the rows' average length, so that a large file does not go through many grow-and-copy steps (each
  // briefly holds the old and the new arrays).
  const fileBytes = typeof source === 'string' ? await fileSize(source) : Buffer.byteLength(source.text);
  let textBytes = 0;
  let seen = 0;
  const rows = await streamCsv(source, {
    header(cells) {
      const mismatch = describeHeaderMismatch(options.schema, cells);
      if (mismatch) throw new CsvError(`${name}: line 1: the header does not match the schema: ${mismatch}`);
    },
    row(cells, line) {
      const label = parseLabel(cells[labelIndex]);
      if (label < 0) throw new CsvError(`${name}: line ${line}, column ${quoted(columnNames[labelIndex], 60)}: expected 0 or 1, got ${quoted(cells[labelIndex])}`);
      for (let i = 0; i < cells.length; i++) {
        const k = featureIndex[i];
        if (k < 0) continue;
        const cell = cells[i];
        let value = Number.NaN;
        if (cell !== '') {
          value = Number(cell);
          if (!Number.isFinite(value)) throw new CsvError(`${name}: line ${line}, column ${quoted(columnNames[i], 60)}: ${quoted(cell)} is not a finite number`);
        }
        features[k] = mapFeature(maps[k], value);
      }
      const text = canonicalRowText(cells);
      (options.splitter.isValidation(text) ? validation : train).append(features, label, text);
      if (++seen <= ESTIMATE_AFTER_ROWS) {
        textBytes += text.length + 1;
        if (seen === ESTIMATE_AFTER_ROWS) {
          const expected = fileBytes / (textBytes / seen);
          const share = validation.n / seen;
          train.reserve(Math.ceil(expected * (1 - share) * 1.03) + 1024);
          validation.reserve(Math.ceil(expected * share * 1.1) + 1024);
        }
      }
    },
  });
  if (train.n === 0 || validation.n === 0) throw new CsvError(`${name}: ${rows} rows are too few to split (training ${train.n}, validation ${validation.n})`);
  return { schema: options.schema, schemaHash: schemaHash(options.schema), train: train.finish(featureNames), validation: validation.finish(featureNames), rows };
}
