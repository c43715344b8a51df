// Charts as SVG, rendered on the server by vega-lite (compiles a chart description) and vega (renders it
// headless, no canvas), then inlined in the page: no script runs in the browser and nothing is fetched
// from a CDN.
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

type Spec = vegaLite.TopLevelSpec;

async function render(spec: Spec): Promise<string> {
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const BASE = { width: 560, height: 220, background: 'white', config: { font: 'sans-serif', axis: { labelFontSize: 11, titleFontSize: 12 } } } as const;

/** Global AUC per round, with a ±1.96·stderr band where the round has an AUC standard error. */
export function aucChart(rounds: { round: number; auc: number | null; aucStderr: number | null }[], title: string): Promise<string> {
  const values = rounds
    .filter((r) => r.auc !== null)
    .map((r) => ({
      round: r.round,
      auc: r.auc,
      low: r.aucStderr === null ? null : Math.max(0, (r.auc as number) - 1.96 * r.aucStderr),
      high: r.aucStderr === null ? null : Math.min(1, (r.auc as number) + 1.96 * r.aucStderr),
    }));
  const layers: Spec[] = [];
  if (values.some((v) => v.low !== null)) {
    layers.push({
      mark: { type: 'area', opacity: 0.25, color: '#4c78a8' },
      transform: [{ filter: 'datum.low !== null' }],
      encoding: { x: { field: 'round', type: 'quantitative' }, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } },
    } as unknown as Spec);
  }
  layers.push({
    mark: { type: 'line', point: true, color: '#4c78a8' },
    encoding: {
      x: { field: 'round', type: 'quantitative', title: 'round', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'auc', type: 'quantitative', title: 'global AUC', scale: { zero: false } },
    },
  } as unknown as Spec);
  return render({ ...BASE, title, data: { values }, layer: layers } as unknown as Spec);
}

/** ε spent against the budget, one bar per institution, the budget as a tick. */
export function spentVsBudgetChart(rows: { institutionId: string; epsilon: number; budget: number }[]): Promise<string> {
  const height = Math.max(80, Math.min(1600, rows.length * 16));
  return render({
    ...BASE,
    height,
    title: 'ε spent (all runs) vs budget',
    data: { values: rows },
    layer: [
      { mark: { type: 'bar', color: '#f58518' }, encoding: { y: { field: 'institutionId', type: 'nominal', title: null, sort: null }, x: { field: 'epsilon', type: 'quantitative', title: 'ε' } } },
      { mark: { type: 'tick', color: 'black', thickness: 2 }, encoding: { y: { field: 'institutionId', type: 'nominal', sort: null }, x: { field: 'budget', type: 'quantitative' } } },
    ],
  } as unknown as Spec);
}

/** Remaining budget after each recorded event of one institution. */
export function burnDownChart(points: { event: number; remaining: number; epsilon: number }[], budget: number, title: string): Promise<string> {
  const values = [{ event: 0, remaining: budget, epsilon: 0 }, ...points];
  return render({
    ...BASE,
    title,
    data: { values },
    mark: { type: 'line', point: true, color: '#54a24b' },
    encoding: {
      x: { field: 'event', type: 'quantitative', title: 'privacy events recorded (rounds)', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'remaining', type: 'quantitative', title: 'remaining ε', scale: { domain: [0, budget] } },
    },
  } as unknown as Spec);
}
