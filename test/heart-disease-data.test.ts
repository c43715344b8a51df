// The bundled four-hospital heart-disease data (data/heart_disease_uci4.csv) loads through its public
// schema with the hospital as the split column: every row, four institutions, and each empty cell mapped
// to the schema's declared `missing` value (docs/experiments.md, data/README.md).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { featureColumns, featureMap, mapFeature, readSchemaFile } from '@dpfed/proto/data-schema';
import { loadSimCsv } from '@dpfed/simulations/sim-data';

const CSV = 'data/heart_disease_uci4.csv';
const SCHEMA = 'data/heart_disease_uci4.schema.json';

describe('bundled heart-disease data', () => {
  it('loads by site through its schema, empty cells becoming the declared missing values', async () => {
    const schema = readSchemaFile(SCHEMA);
    const data = await loadSimCsv({ path: CSV, labelColumn: 'label', schema, splitColumn: 'site' });
    expect(data.n).toBe(920);
    expect(data.groupNames).toEqual(['0', '1', '2', '3']);
    expect(data.featureNames).not.toContain('site');
    const perSite = [0, 0, 0, 0];
    for (const g of data.group!) perSite[g]++;
    expect(perSite).toEqual([303, 294, 123, 200]);

    // Cross-check every cell against the raw text: an empty cell maps to the column's missing value, a
    // present one to its clipped and scaled value; no input leaves [-1, 1].
    const lines = readFileSync(CSV, 'utf8').trim().split('\n');
    const header = lines[0].split(',');
    const columns = featureColumns(schema);
    const maps = columns.map(featureMap);
    let empty = 0;
    for (let r = 0; r < data.n; r++) {
      const cells = lines[r + 1].split(',');
      columns.forEach((c, k) => {
        const cell = cells[header.indexOf(c.name)];
        const input = data.x[r * data.dim + k];
        if (cell === '') {
          empty++;
          expect(c.missing, `${c.name} has empty cells but no declared missing value`).toBeDefined();
          expect(input).toBeCloseTo(mapFeature(maps[k], c.missing!), 6);
        } else expect(input).toBeCloseTo(mapFeature(maps[k], Number(cell)), 6);
        expect(Math.abs(input)).toBeLessThanOrEqual(1 + 1e-6);
      });
    }
    // ca 611, thal 486, slope 309, chol 202, fbs 90, oldpeak 62, trestbps 60, thalach 55, exang 55, restecg 2
    expect(empty).toBe(1932);
    // An unmeasured cholesterol is an empty cell in this copy, never a 0.
    expect(lines.slice(1).some((l) => l.split(',')[header.indexOf('chol')] === '0')).toBe(false);
  });
});
