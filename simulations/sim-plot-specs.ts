// The Vega-Lite specs of the `dpfed sim` plots, one pure function per plot. Each takes the sweep's result
// rows and returns a spec, or null when the rows hold nothing that plot shows (no DP settings, no local
// baseline…): a plot without data is skipped, never drawn empty. Means and 95 % bands over seeds are
// computed here (simulations/seed-interval.ts) and handed to Vega-Lite as plain values.
import type { TopLevelSpec } from 'vega-lite';
import { seedInterval } from './seed-interval.ts';
import { describe, distinct, epsilonLabel, epsilonOrder, groupBy, SETTING_DIMS, varyingDims, type SweepDim } from './sim-plot-groups.ts';
import type { SimResultRow } from './sim-result.ts';

/**
 * A result row as the plots read it. `epsilonPerRound` (ε spent by each institution after each committed
 * round) is optional: with it the ε plot is a burn-down over rounds, without it the final `epsilonSpent`.
 */
export type SimPlotRow = SimResultRow & { epsilonPerRound?: Record<string, number[]> };

export interface NamedSpec {
  /** File name stem: `<name>.svg`, `<name>.png`. */
  name: string;
  spec: TopLevelSpec;
}

const AUC_BOUNDS = [0, 1] as const;
const CONFIG = { font: 'sans-serif', axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelLimit: 480, titleLimit: 480 } };
const BASE = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', background: 'white', config: CONFIG } as const;

const isFederatedDp = (r: SimResultRow) => r.baseline === 'federated' && r.epsilon !== null;
const isFederated = (r: SimResultRow) => r.baseline === 'federated';
const isLocalOnTest = (r: SimResultRow) => r.baseline === 'local' && r.scoredOn === 'test' && r.institution !== null;

/** A colour scheme with a distinct colour for each of `n` series where one exists (Vega's largest has 20). */
const scheme = (n: number) => (n <= 10 ? 'tableau10' : 'tableau20');

/** Mean AUC over the rows (a setting's seeds) with its 95 % interval. */
const aucInterval = (g: readonly SimResultRow[]) =>
  seedInterval(
    g.map((r) => r.auc),
    AUC_BOUNDS,
  );

/** Does the sweep's DP part run more than one privacy mode (record and client)? */
const privacyVaries = (rows: readonly SimResultRow[]) => varyingDims(rows.filter(isFederatedDp), ['privacy']).length > 0;

/** One panel per model, side by side, when there are several; a single layered chart otherwise. */
function panelled(panelField: string, panels: string[], layer: unknown[], size: { width: number; height: number }, ownYScale = false) {
  if (panels.length <= 1) return { ...size, layer };
  return {
    facet: { field: panelField, type: 'nominal', title: null, sort: panels },
    columns: Math.min(3, panels.length),
    spec: { ...size, layer },
    ...(ownYScale ? { resolve: { scale: { y: 'independent' } } } : {}),
  };
}

/** Mean over each seed's mean over institutions: the local-only reference of one setting. */
function localMeanOverInstitutions(rows: SimResultRow[]) {
  const perSeed = [...groupBy(rows, (r) => String(r.seed)).values()].map((g) => g.reduce((s, r) => s + r.auc, 0) / g.length);
  return seedInterval(perSeed, AUC_BOUNDS);
}

/**
 * (a) Privacy–utility: AUC on the test rows against ε for federated learning with DP (mean over seeds, 95 %
 * band), with horizontal lines for federated without DP, centralised and local-only (mean over
 * institutions). One curve per setting that differs in something other than ε; one panel per model.
 */
export function privacyUtilitySpec(rows: readonly SimPlotRow[]): TopLevelSpec | null {
  const dp = rows.filter(isFederatedDp);
  if (dp.length === 0) return null;
  const curveDims: SweepDim[] = [...varyingDims(dp, SETTING_DIMS), ...(privacyVaries(rows) ? ['privacy' as const] : [])];
  const curves = [...groupBy(dp, (r) => JSON.stringify([r.model, describe(r, curveDims, ''), r.epsilon])).values()].map((g) => ({
    kind: 'curve',
    model: g[0].model,
    series: describe(g[0], curveDims, 'federated with DP'),
    epsilon: g[0].epsilon,
    ...aucInterval(g),
  }));
  const models = distinct(dp.map((r) => r.model)).sort();
  const references: { kind: string; model: string; reference: string; mean: number; low: number | null; high: number | null }[] = [];
  const addReferences = (name: string, subset: SimResultRow[], summarise: (g: SimResultRow[]) => ReturnType<typeof seedInterval>) => {
    const dims = varyingDims(subset, SETTING_DIMS);
    for (const g of groupBy(subset, (r) => JSON.stringify([r.model, describe(r, dims, '')])).values()) {
      const label = dims.length === 0 ? name : `${name} (${describe(g[0], dims, '')})`;
      references.push({ kind: 'reference', model: g[0].model, reference: label, ...summarise(g) });
    }
  };
  const inPanels = (r: SimResultRow) => models.includes(r.model);
  addReferences(
    'federated, no DP',
    rows.filter((r) => isFederated(r) && r.epsilon === null && inPanels(r)),
    aucInterval,
  );
  addReferences(
    'centralised',
    rows.filter((r) => r.baseline === 'centralised' && inPanels(r)),
    aucInterval,
  );
  addReferences(
    'local only, mean over institutions',
    rows.filter((r) => isLocalOnTest(r) && inPanels(r)),
    localMeanOverInstitutions,
  );

  const x = { field: 'epsilon', type: 'quantitative', title: 'ε (target per institution, log scale)', scale: { type: 'log', nice: false, padding: 12 } };
  const oneSeries = distinct(curves.map((c) => c.series)).length === 1;
  const color = { field: 'series', type: 'nominal', title: 'federated with DP', legend: oneSeries ? null : {} };
  const layer: unknown[] = [
    {
      transform: [{ filter: "datum.kind === 'curve' && datum.low !== null" }],
      mark: { type: 'area', opacity: 0.2 },
      encoding: { x, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' }, color },
    },
    {
      transform: [{ filter: "datum.kind === 'curve'" }],
      mark: { type: 'line', point: true },
      encoding: { x, y: { field: 'mean', type: 'quantitative', title: 'AUC on the test rows', scale: { zero: false } }, color },
    },
  ];
  if (references.length > 0) {
    layer.push({
      transform: [{ filter: "datum.kind === 'reference'" }],
      mark: { type: 'rule', color: '#555', strokeWidth: 1.5 },
      encoding: { y: { field: 'mean', type: 'quantitative' }, strokeDash: { field: 'reference', type: 'nominal', title: 'reference (mean over seeds)' } },
    });
  }
  return {
    ...BASE,
    title: { text: 'Privacy–utility: AUC against ε', subtitle: 'mean over seeds, band: 95 % interval' },
    data: { values: [...curves, ...references] },
    ...panelled('model', models, layer, { width: 420, height: 280 }),
  } as unknown as TopLevelSpec;
}

/** (b) AUC on the test rows after each round of the federated settings: one line per ε, band over seeds. */
export function aucPerRoundSpec(rows: readonly SimPlotRow[]): TopLevelSpec | null {
  const fed = rows.filter((r) => isFederated(r) && r.aucPerRound.length > 0);
  if (fed.length === 0) return null;
  const withMode = privacyVaries(rows);
  const panelDims = varyingDims(fed, SETTING_DIMS);
  const multiModel = distinct(fed.map((r) => r.model)).length > 1;
  const panelOf = (r: SimResultRow) => [multiModel ? r.model : '', describe(r, panelDims, '')].filter((s) => s !== '').join(' · ');
  const values: Record<string, unknown>[] = [];
  for (const g of groupBy(fed, (r) => JSON.stringify([panelOf(r), epsilonLabel(r, withMode)])).values()) {
    const rounds = Math.max(...g.map((r) => r.aucPerRound.length));
    for (let i = 0; i < rounds; i++) {
      const aucs = g.filter((r) => i < r.aucPerRound.length).map((r) => r.aucPerRound[i]);
      values.push({ panel: panelOf(g[0]), setting: epsilonLabel(g[0], withMode), round: i + 1, ...seedInterval(aucs, AUC_BOUNDS) });
    }
  }
  const settings = distinct([...fed].sort((a, b) => epsilonOrder(a) - epsilonOrder(b)).map((r) => epsilonLabel(r, withMode)));
  const panels = distinct(fed.map(panelOf)).sort();
  const x = { field: 'round', type: 'quantitative', title: 'round', axis: { tickMinStep: 1, format: 'd' } };
  const color = { field: 'setting', type: 'nominal', title: 'privacy', scale: { domain: settings, scheme: scheme(settings.length) } };
  const layer = [
    { transform: [{ filter: 'datum.low !== null' }], mark: { type: 'area', opacity: 0.15 }, encoding: { x, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' }, color } },
    { mark: { type: 'line', point: true }, encoding: { x, y: { field: 'mean', type: 'quantitative', title: 'AUC on the test rows', scale: { zero: false } }, color } },
  ];
  return {
    ...BASE,
    title: { text: 'AUC per round (federated)', subtitle: 'mean over seeds, band: 95 % interval' },
    data: { values },
    ...panelled('panel', panels, layer, { width: 420, height: 260 }),
  } as unknown as TopLevelSpec;
}

/**
 * (c) ε spent per institution in each federated DP setting: a burn-down over rounds when the rows carry
 * `epsilonPerRound`, else the final ε spent as grouped bars, each with a tick at the setting's target ε.
 */
export function epsilonSpentSpec(rows: readonly SimPlotRow[]): TopLevelSpec | null {
  const dp = rows.filter((r) => isFederatedDp(r) && Object.keys(r.epsilonSpent).length > 0);
  if (dp.length === 0) return null;
  const dims: SweepDim[] = [...varyingDims(dp, SETTING_DIMS), ...(privacyVaries(rows) ? ['privacy' as const] : [])];
  const multiModel = distinct(dp.map((r) => r.model)).length > 1;
  const settingOf = (r: SimResultRow) => [multiModel ? r.model : '', describe(r, dims, ''), `target ε = ${r.epsilon}`].filter((s) => s !== '').join(' · ');
  const sorted = [...dp].sort((a, b) => epsilonOrder(a) - epsilonOrder(b));
  const settings = distinct(sorted.map(settingOf));
  const institutions = distinct(dp.flatMap((r) => Object.keys(r.epsilonSpent))).sort();

  const perRound = dp.filter((r) => r.epsilonPerRound && Object.keys(r.epsilonPerRound).length > 0);
  if (perRound.length > 0) {
    const values: Record<string, unknown>[] = [];
    for (const g of groupBy(perRound, settingOf).values()) {
      for (const institution of distinct(g.flatMap((r) => Object.keys(r.epsilonPerRound!))).sort()) {
        const series = g.map((r) => r.epsilonPerRound![institution]).filter((s): s is number[] => Array.isArray(s));
        const rounds = Math.max(0, ...series.map((s) => s.length));
        for (let i = 0; i < rounds; i++) {
          const spent = series.filter((s) => i < s.length).map((s) => s[i]);
          values.push({ setting: settingOf(g[0]), institution, round: i + 1, target: g[0].epsilon, ...seedInterval(spent) });
        }
      }
    }
    const layer = [
      {
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'round', type: 'quantitative', title: 'round', axis: { tickMinStep: 1, format: 'd' } },
          y: { field: 'mean', type: 'quantitative', title: 'ε spent (mean over seeds)' },
          color: { field: 'institution', type: 'nominal', title: 'institution' },
        },
      },
      { mark: { type: 'rule', strokeDash: [4, 3], color: '#555' }, encoding: { y: { aggregate: 'max', field: 'target', type: 'quantitative' } } },
    ];
    return {
      ...BASE,
      title: { text: 'ε burn-down per institution', subtitle: "dashed: the setting's target ε" },
      data: { values },
      ...panelled('setting', distinct(sorted.filter((r) => perRound.includes(r)).map(settingOf)), layer, { width: 360, height: 220 }, true),
    } as unknown as TopLevelSpec;
  }

  const values: Record<string, unknown>[] = [];
  for (const g of groupBy(dp, settingOf).values()) {
    for (const institution of institutions) {
      const spent = g.map((r) => r.epsilonSpent[institution]).filter((v): v is number => typeof v === 'number');
      if (spent.length > 0) values.push({ setting: settingOf(g[0]), institution, target: g[0].epsilon, ...seedInterval(spent) });
    }
  }
  const x = { field: 'institution', type: 'nominal', title: 'institution', sort: institutions, axis: { labelAngle: -30 } };
  const xOffset = { field: 'setting', type: 'nominal', sort: settings };
  const color = { field: 'setting', type: 'nominal', title: 'setting', scale: { domain: settings, scheme: scheme(settings.length) } };
  return {
    ...BASE,
    title: { text: 'ε spent per institution over the run', subtitle: "mean over seeds; black tick: the setting's target ε" },
    data: { values },
    width: Math.min(1200, Math.max(360, institutions.length * settings.length * 14)),
    height: 260,
    layer: [
      { mark: 'bar', encoding: { x, xOffset, color, y: { field: 'mean', type: 'quantitative', title: 'ε spent (mean over seeds)' } } },
      { transform: [{ filter: 'datum.low !== null' }], mark: { type: 'rule', color: 'black' }, encoding: { x, xOffset, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } } },
      { mark: { type: 'tick', color: 'black', thickness: 2 }, encoding: { x, xOffset, y: { field: 'target', type: 'quantitative' } } },
    ],
  } as unknown as TopLevelSpec;
}

/**
 * (d) Federated against local-only per institution: for each institution, its local-only model's AUC on
 * the common test rows beside the federated model's AUC (without DP and at each ε) of the same model,
 * institutions and split; mean over seeds with 95 % error bars.
 */
export function federatedVsLocalSpec(rows: readonly SimPlotRow[]): TopLevelSpec | null {
  const local = rows.filter(isLocalOnTest);
  if (local.length === 0) return null;
  const withMode = privacyVaries(rows);
  const partitionDims = varyingDims(local, ['institutions', 'split']);
  const multiModel = distinct(local.map((r) => r.model)).length > 1;
  const panelOf = (r: SimResultRow) => [multiModel ? r.model : '', describe(r, partitionDims, '')].filter((s) => s !== '').join(' · ');
  const values: Record<string, unknown>[] = [];
  const bars: { label: string; order: number }[] = [{ label: 'local only', order: -Infinity }];
  const panels: string[] = [];
  for (const lg of groupBy(local, (r) => JSON.stringify([r.model, r.institutions, r.split])).values()) {
    const { model, institutions, split } = lg[0];
    const fed = rows.filter((r) => isFederated(r) && r.model === model && r.institutions === institutions && r.split === split);
    if (fed.length === 0) continue;
    const panel = panelOf(lg[0]);
    panels.push(panel);
    const fedDims = varyingDims(fed, ['rounds', 'dropout', 'aggregation']);
    const fedBars = [...groupBy(fed, (r) => JSON.stringify([epsilonLabel(r, withMode), describe(r, fedDims, '')])).values()].map((g) => {
      const label = ['federated', epsilonLabel(g[0], withMode), describe(g[0], fedDims, '')].filter((s) => s !== '').join(', ');
      if (!bars.some((b) => b.label === label)) bars.push({ label, order: epsilonOrder(g[0]) });
      return {
        label,
        interval: aucInterval(g),
      };
    });
    for (const [institution, ig] of [...groupBy(lg, (r) => r.institution!)].sort(([a], [b]) => a.localeCompare(b))) {
      values.push({
        panel,
        institution,
        bar: 'local only',
        ...seedInterval(
          ig.map((r) => r.auc),
          AUC_BOUNDS,
        ),
      });
      for (const f of fedBars) values.push({ panel, institution, bar: f.label, ...f.interval });
    }
  }
  if (panels.length === 0) return null;
  const order = bars.sort((a, b) => a.order - b.order).map((b) => b.label);
  const institutionCount = distinct(values.map((v) => v.institution)).length;
  // Bars start at AUC 0.5 (a model that ranks at random) unless some interval reaches below it.
  const floor = values.every((v) => ((v.low ?? v.mean) as number) >= 0.5) ? 0.5 : 0;
  const x = { field: 'institution', type: 'nominal', title: 'institution', axis: { labelAngle: -30 } };
  const xOffset = { field: 'bar', type: 'nominal', sort: order };
  const y = { field: 'mean', type: 'quantitative', title: floor === 0.5 ? 'AUC on the test rows (bars from 0.5)' : 'AUC on the test rows', scale: { zero: false, domainMin: floor } };
  const layer = [
    { mark: 'bar', encoding: { x, xOffset, color: { field: 'bar', type: 'nominal', title: 'trained', scale: { domain: order, scheme: scheme(order.length) } }, y, y2: { datum: floor } } },
    { transform: [{ filter: 'datum.low !== null' }], mark: { type: 'rule', color: 'black' }, encoding: { x, xOffset, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } } },
  ];
  return {
    ...BASE,
    title: { text: 'Federated vs local-only, per institution', subtitle: 'AUC on the common test rows, mean over seeds, bars: 95 % interval' },
    data: { values },
    ...panelled('panel', distinct(panels).sort(), layer, { width: Math.min(1000, Math.max(360, institutionCount * order.length * 14)), height: 260 }),
  } as unknown as TopLevelSpec;
}

/** Every plot the rows have data for, in a fixed order. */
export function simPlotSpecs(rows: readonly SimPlotRow[]): NamedSpec[] {
  const all: [string, TopLevelSpec | null][] = [
    ['privacy-utility', privacyUtilitySpec(rows)],
    ['auc-per-round', aucPerRoundSpec(rows)],
    ['epsilon-per-institution', epsilonSpentSpec(rows)],
    ['federated-vs-local', federatedVsLocalSpec(rows)],
  ];
  return all.filter((e): e is [string, TopLevelSpec] => e[1] !== null).map(([name, spec]) => ({ name, spec }));
}
