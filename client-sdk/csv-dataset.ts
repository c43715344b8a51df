// Reads an institution's CSV: a header row, numeric cells, an empty cell for a missing value (kept as
// NaN until standardisation), and a binary label column. Errors name the line and the column.
import { readFileSync } from 'node:fs';

export interface Dataset {
  featureNames: string[];
  /** Row-major features, n × dim; NaN marks a missing value. */
  x: Float32Array;
  /** Labels, 0 or 1. */
  y: Float32Array;
  n: number;
  dim: number;
}

export class CsvError extends Error {}

export function parseCsv(text: string, labelColumn: string, source = 'CSV'): Dataset {
  const lines = text.split(/\r?\n/);
  while (lines.length && lines[lines.length - 1].trim() === '') lines.pop();
  if (lines.length < 2) throw new CsvError(`${source}: expected a header row and at least one data row`);
  const header = lines[0].split(',').map((h) => h.trim().replace(/^"(.*)"$/, '$1'));
  const labelIndex = header.indexOf(labelColumn);
  if (labelIndex < 0) throw new CsvError(`${source}: label column "${labelColumn}" not found in the header (columns: ${header.join(', ')})`);
  const featureIdx = header.map((_, i) => i).filter((i) => i !== labelIndex);
  const dim = featureIdx.length;
  const n = lines.length - 1;
  const x = new Float32Array(n * dim);
  const y = new Float32Array(n);
  let rows = 0;
  for (let li = 1; li < lines.length; li++) {
    const line = lines[li];
    if (line.trim() === '') throw new CsvError(`${source}: line ${li + 1}: empty line`);
    const cells = line.split(',');
    if (cells.length !== header.length) throw new CsvError(`${source}: line ${li + 1}: expected ${header.length} fields, got ${cells.length}`);
    const labelCell = cells[labelIndex].trim();
    if (labelCell !== '0' && labelCell !== '1' && labelCell !== '0.0' && labelCell !== '1.0') {
      throw new CsvError(`${source}: line ${li + 1}, column "${labelColumn}": expected 0 or 1, got "${labelCell}"`);
    }
    y[rows] = Number(labelCell);
    for (let j = 0; j < dim; j++) {
      const cell = cells[featureIdx[j]].trim();
      let value = Number.NaN;
      if (cell !== '') {
        value = Number(cell);
        if (!Number.isFinite(value)) throw new CsvError(`${source}: line ${li + 1}, column "${header[featureIdx[j]]}": "${cell}" is not a finite number`);
      }
      x[rows * dim + j] = value;
    }
    rows++;
  }
  return { featureNames: featureIdx.map((i) => header[i]), x, y, n: rows, dim };
}

export function loadCsv(path: string, labelColumn: string): Dataset {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CsvError(`cannot read ${path}: ${(error as Error).message}`);
  }
  return parseCsv(text, labelColumn, path);
}

/** The rows at `indices`, as a new dataset. */
export function selectRows(data: Dataset, indices: ArrayLike<number>): Dataset {
  const x = new Float32Array(indices.length * data.dim);
  const y = new Float32Array(indices.length);
  for (let r = 0; r < indices.length; r++) {
    const i = indices[r];
    x.set(data.x.subarray(i * data.dim, (i + 1) * data.dim), r * data.dim);
    y[r] = data.y[i];
  }
  return { featureNames: data.featureNames, x, y, n: indices.length, dim: data.dim };
}
