// The `dpfed sim` plots: the specs from fabricated-but-plausible result rows (test/helpers/sim-rows-fixture.ts)
// hold the means over seeds the rows give and compile with Vega-Lite without warnings; plots without data
// are skipped; writeSimPlots writes SVG and PNG files (the PNG a real image of twice the SVG's size, its
// text drawn with a system font); and every file opens in a real headless Chromium (the system's
// /usr/bin/chromium through playwright-core) without errors.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import * as vegaLite from 'vega-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findSystemFonts, renderSvg, svgToPng } from '@dpfed/simulations/sim-plot-render';
import { aucPerRoundSpec, epsilonSpentSpec, federatedVsLocalSpec, privacyUtilitySpec, simPlotSpecs } from '@dpfed/simulations/sim-plot-specs';
import { writeSimPlots } from '@dpfed/simulations/sim-plots';
import { simRowsFixture } from './helpers/sim-rows-fixture.ts';

type Values = Record<string, any>[];
const valuesOf = (spec: unknown): Values => (spec as { data: { values: Values } }).data.values;
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** Vega-Lite's warnings and errors while compiling `spec`. */
function compileWarnings(spec: vegaLite.TopLevelSpec): string[] {
  const messages: string[] = [];
  const logger = {
    level() {
      return logger;
    },
    error(...m: unknown[]) {
      messages.push(`error: ${m.join(' ')}`);
      return logger;
    },
    warn(...m: unknown[]) {
      messages.push(`warn: ${m.join(' ')}`);
      return logger;
    },
    info() {
      return logger;
    },
    debug() {
      return logger;
    },
  };
  vegaLite.compile(spec, { logger: logger as never });
  return messages;
}

function svgSize(svg: string): { width: number; height: number } {
  const m = /^<svg[^>]*\swidth="(\d+(?:\.\d+)?)"[^>]*\sheight="(\d+(?:\.\d+)?)"/.exec(svg);
  if (!m) throw new Error('no width/height on the <svg> element');
  return { width: Number(m[1]), height: Number(m[2]) };
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
  expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

const rows = simRowsFixture();
const twoModels = simRowsFixture({ models: ['logistic', 'mlp:64,32'] });

describe('plot specs', () => {
  it('privacy–utility: one point per ε with the mean over seeds, and the three reference lines', () => {
    const values = valuesOf(privacyUtilitySpec(rows));
    const curve = values.filter((v) => v.kind === 'curve');
    expect(curve.map((v) => v.epsilon).sort((a, b) => a - b)).toEqual([0.5, 1, 2, 8]);
    const atOne = rows.filter((r) => r.baseline === 'federated' && r.epsilon === 1).map((r) => r.auc);
    expect(atOne).toHaveLength(3);
    const point = curve.find((v) => v.epsilon === 1)!;
    expect(point.mean).toBeCloseTo(mean(atOne), 12);
    expect(point.n).toBe(3);
    expect(point.low).toBeLessThan(point.mean);
    expect(point.high).toBeGreaterThan(point.mean);
    const refs = Object.fromEntries(values.filter((v) => v.kind === 'reference').map((v) => [v.reference, v.mean]));
    expect(Object.keys(refs).sort()).toEqual(['centralised', 'federated, no DP', 'local only, mean over institutions']);
    expect(refs.centralised).toBeCloseTo(mean(rows.filter((r) => r.baseline === 'centralised').map((r) => r.auc)), 12);
    // local-only: the mean over institutions on the test rows (not their own rows), then over seeds
    const perSeed = [0, 1, 2].map((seed) => mean(rows.filter((r) => r.baseline === 'local' && r.scoredOn === 'test' && r.seed === seed).map((r) => r.auc)));
    expect(refs['local only, mean over institutions']).toBeCloseTo(mean(perSeed), 12);
  });

  it('AUC per round: one series per ε and no DP, one value per round', () => {
    const values = valuesOf(aucPerRoundSpec(rows));
    expect(new Set(values.map((v) => v.setting))).toEqual(new Set(['no DP', 'ε = 0.5', 'ε = 1', 'ε = 2', 'ε = 8']));
    expect(values).toHaveLength(5 * 10);
    const third = values.find((v) => v.setting === 'ε = 2' && v.round === 3)!;
    expect(third.mean).toBeCloseTo(mean(rows.filter((r) => r.baseline === 'federated' && r.epsilon === 2).map((r) => r.aucPerRound[2])), 12);
  });

  it('ε per institution: final ε as bars without per-round figures, a burn-down over rounds with them', () => {
    const bars = epsilonSpentSpec(rows) as any;
    expect(valuesOf(bars)).toHaveLength(4 * 5);
    expect(bars.layer.map((l: any) => (typeof l.mark === 'string' ? l.mark : l.mark.type))).toEqual(['bar', 'rule', 'tick']);
    const a = valuesOf(bars).find((v) => v.institution === 'bank-a' && v.target === 2)!;
    expect(a.mean).toBeCloseTo(mean(rows.filter((r) => r.epsilon === 2).map((r) => r.epsilonSpent['bank-a'])), 12);
    const burnDown = epsilonSpentSpec(simRowsFixture({ perRoundEpsilon: true })) as any;
    const values = valuesOf(burnDown);
    expect(values).toHaveLength(4 * 5 * 10);
    expect(Math.max(...values.filter((v) => v.target === 1).map((v) => v.round))).toBe(10);
    expect(burnDown.facet.field).toBe('setting');
  });

  it('federated vs local: per institution its local-only AUC on the test rows beside each federated setting', () => {
    const values = valuesOf(federatedVsLocalSpec(rows));
    expect(values).toHaveLength(5 * (1 + 5));
    const local = values.find((v) => v.institution === 'bank-c' && v.bar === 'local only')!;
    expect(local.mean).toBeCloseTo(mean(rows.filter((r) => r.baseline === 'local' && r.institution === 'bank-c' && r.scoredOn === 'test').map((r) => r.auc)), 12);
    const fed = values.find((v) => v.institution === 'bank-c' && v.bar === 'federated, no DP')!;
    expect(fed.mean).toBeCloseTo(mean(rows.filter((r) => r.baseline === 'federated' && r.epsilon === null).map((r) => r.auc)), 12);
  });

  it('several models: one panel per model', () => {
    for (const spec of [privacyUtilitySpec(twoModels), aucPerRoundSpec(twoModels), federatedVsLocalSpec(twoModels)] as any[]) {
      expect(spec.facet).toBeDefined();
      expect(spec.facet.sort).toEqual(['logistic', 'mlp:64,32']);
    }
    // The panels keep that order whichever model's rows come first in the results.
    const reversed = federatedVsLocalSpec([...twoModels].reverse()) as any;
    expect(reversed.facet.sort).toEqual(['logistic', 'mlp:64,32']);
    // The bars' legend names what was trained (local only, federated at each ε), not the model.
    expect(reversed.spec.layer[0].encoding.color.title).toBe('trained');
  });

  it('plots without data are skipped', () => {
    const noDp = simRowsFixture({ epsilons: [null] });
    expect(simPlotSpecs(noDp).map((s) => s.name)).toEqual(['auc-per-round', 'federated-vs-local']);
    const noBaselines = simRowsFixture({ baselines: false });
    expect(simPlotSpecs(noBaselines).map((s) => s.name)).toEqual(['privacy-utility', 'auc-per-round', 'epsilon-per-institution']);
    const onlyLocal = rows.filter((r) => r.baseline === 'local');
    expect(simPlotSpecs(onlyLocal)).toEqual([]);
    expect(simPlotSpecs([])).toEqual([]);
  });

  it('every spec compiles with Vega-Lite without a warning', () => {
    const specs = [...simPlotSpecs(rows), ...simPlotSpecs(twoModels), ...simPlotSpecs(simRowsFixture({ perRoundEpsilon: true, seeds: 1 }))];
    expect(specs).toHaveLength(12);
    for (const { name, spec } of specs) expect(compileWarnings(spec), name).toEqual([]);
  });
});

describe('PNG text', () => {
  it('the system has a sans-serif font and the PNG draws the text with it', async () => {
    const fonts = findSystemFonts();
    expect(fonts.files.length).toBeGreaterThan(0);
    expect(fonts.sansSerif).not.toBeNull();
    const svg = await renderSvg(privacyUtilitySpec(rows)!);
    const withText = await svgToPng(svg);
    const withoutText = await svgToPng(svg.replace(/<text[^>]*>[^<]*<\/text>/g, ''));
    expect(withText.equals(withoutText)).toBe(false);
  });

  it('refuses to write a PNG when there is no font', async () => {
    const svg = await renderSvg(aucPerRoundSpec(rows)!);
    await expect(svgToPng(svg, { fonts: { files: [], sansSerif: null } })).rejects.toThrow(/no font to draw the plots' text/);
  });
});

describe('writeSimPlots', () => {
  let dir: string;
  let browser: Browser;
  let written: string[];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpfed-sim-plots-'));
    written = await writeSimPlots(path.join(dir, 'out'), twoModels);
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes an SVG and a PNG of twice its size per plot', () => {
    const names = ['privacy-utility', 'auc-per-round', 'epsilon-per-institution', 'federated-vs-local'];
    expect(written).toEqual(names.flatMap((n) => [path.join(dir, 'out', `${n}.svg`), path.join(dir, 'out', `${n}.png`)]));
    for (const name of names) {
      const svg = fs.readFileSync(path.join(dir, 'out', `${name}.svg`), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toMatch(/<text[^>]*>[^<]+<\/text>/);
      const size = svgSize(svg);
      expect(size.width).toBeGreaterThan(200);
      const png = fs.readFileSync(path.join(dir, 'out', `${name}.png`));
      expect(png.length).toBeGreaterThan(10_000);
      expect(pngSize(png)).toEqual({ width: Math.ceil(size.width * 2), height: Math.ceil(size.height * 2) });
    }
  });

  it('every SVG and PNG opens in Chromium without errors', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('requestfailed', (r) => errors.push(`failed: ${r.url()}`));
    const html = path.join(dir, 'out', 'index.html');
    fs.writeFileSync(html, `<!doctype html><html><body>${written.map((f) => `<img src="${path.basename(f)}">`).join('\n')}</body></html>`);
    await page.goto(pathToFileURL(html).href, { waitUntil: 'load' });
    const images = await page.$$eval('img', (imgs) => imgs.map((i) => ({ src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight })));
    expect(images).toHaveLength(8);
    for (const img of images) {
      const file = path.join(dir, 'out', img.src!);
      const expected = img.src!.endsWith('.svg') ? svgSize(fs.readFileSync(file, 'utf8')) : pngSize(fs.readFileSync(file));
      expect(img.complete, img.src!).toBe(true);
      expect(img.width, img.src!).toBe(Math.round(expected.width));
      expect(img.height, img.src!).toBe(Math.round(expected.height));
    }
    // each SVG opened as a document of its own: Chromium parses it as XML and finds the plot's marks
    for (const svg of written.filter((f) => f.endsWith('.svg'))) {
      await page.goto(pathToFileURL(svg).href, { waitUntil: 'load' });
      expect(await page.evaluate(() => document.documentElement.tagName), svg).toBe('svg');
      expect(await page.locator('path').count(), svg).toBeGreaterThan(5);
    }
    expect(errors).toEqual([]);
    await page.close();
  });
});
