// How a simulation deals its training rows out to institutions, deterministic per seed:
// - `iid`: shuffled, then dealt in turn (equal sizes, the data's label mix everywhere);
// - `dirichlet:ALPHA`: label skew (Hsu et al. 2019): for each class, the institutions' shares of its rows
//   are drawn from Dirichlet(ALPHA, …, ALPHA); small ALPHA gives each institution a very different
//   positive rate, large ALPHA approaches iid;
// - `quantity:ALPHA`: size skew: the institutions' shares of all rows are drawn from Dirichlet(ALPHA),
//   each keeping the data's label mix;
// - `column:NAME` (--split-column NAME): the data's natural groups, one institution per distinct value.
// A draw that leaves an institution fewer than MIN_ROWS rows is drawn again (from the same seeded
// stream, so still deterministic); after 100 draws the split is refused with the reason.
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { INSTITUTION_ID_PATTERN } from '@dpfed/proto/registration';
import { SimDataError } from './sim-data.ts';

export type SplitSpec = { kind: 'iid' } | { kind: 'dirichlet'; alpha: number } | { kind: 'quantity'; alpha: number } | { kind: 'column'; column: string };

/** Fewest rows an institution may hold (it keeps some for itself as its own held-out rows). */
export const MIN_ROWS = 10;

/** Parses --split (iid, dirichlet:ALPHA, quantity:ALPHA) or the `column:NAME` form results carry. */
export function parseSplit(text: string, flag = '--split'): SplitSpec {
  if (text === 'iid') return { kind: 'iid' };
  const m = /^(dirichlet|quantity):(.+)$/.exec(text);
  if (m) {
    const alpha = Number(m[2]);
    if (!(alpha > 0 && Number.isFinite(alpha))) throw new SimDataError(flag, `${m[1]}:ALPHA needs a positive ALPHA, got "${m[2]}"`);
    return { kind: m[1] as 'dirichlet' | 'quantity', alpha };
  }
  if (text.startsWith('column:') && text.length > 7) return { kind: 'column', column: text.slice(7) };
  throw new SimDataError(flag, `expected iid, dirichlet:ALPHA or quantity:ALPHA, got "${text}"`);
}

export function splitName(split: SplitSpec): string {
  return split.kind === 'iid' ? 'iid' : split.kind === 'column' ? `column:${split.column}` : `${split.kind}:${split.alpha}`;
}

/** A Gamma(shape, 1) draw (Marsaglia and Tsang; shape < 1 boosted by U^(1/shape)). */
export function gammaDraw(random: SeededRandom, shape: number): number {
  if (shape < 1) {
    let u = 0;
    while (u === 0) u = random.next();
    return gammaDraw(random, shape + 1) * u ** (1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = random.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = random.next();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Shares drawn from Dirichlet(alpha, …, alpha) over `n` parts. */
export function dirichletDraw(random: SeededRandom, n: number, alpha: number): number[] {
  const g = Array.from({ length: n }, () => gammaDraw(random, alpha));
  const total = g.reduce((a, b) => a + b, 0);
  return total > 0 ? g.map((v) => v / total) : g.map(() => 1 / n);
}

/** Cuts `rows` (already shuffled) into consecutive pieces of the given shares, appending to `into`. */
function cutByShares(rows: number[], shares: number[], into: number[][]): void {
  let from = 0;
  let cumulative = 0;
  shares.forEach((share, k) => {
    cumulative += share;
    const to = k === shares.length - 1 ? rows.length : Math.round(cumulative * rows.length);
    into[k].push(...rows.slice(from, to));
    from = to;
  });
}

export interface InstitutionMembers {
  ids: string[];
  /** Per institution, the row indices (into the pooled data) it holds, ascending. */
  members: Int32Array[];
}

/** The ids of institutions named by a column's values (the value when it is a valid id, else site-K). */
function groupIds(names: string[]): string[] {
  const used = new Set<string>();
  return names.map((name, k) => {
    let id = INSTITUTION_ID_PATTERN.test(name) ? name : `site-${k + 1}`;
    while (used.has(id)) id = `${id}-${k + 1}`;
    used.add(id);
    return id;
  });
}

/**
 * Deals `rows` (indices into the pooled data) out to `count` institutions. `labels` are the pooled
 * labels; `group` and `groupNames` the natural groups (column split only).
 */
export function splitInstitutions(rows: Int32Array, labels: Float32Array, split: SplitSpec, count: number, seed: string, natural?: { group: Int32Array; groupNames: string[] }): InstitutionMembers {
  if (split.kind === 'column') {
    if (!natural) throw new SimDataError('--split-column', 'the data has no split column');
    const members: number[][] = natural.groupNames.map(() => []);
    for (const r of rows) members[natural.group[r]].push(r);
    const ids = groupIds(natural.groupNames);
    const small = members.findIndex((m) => m.length < MIN_ROWS);
    if (small >= 0) throw new SimDataError('--split-column', `the group "${natural.groupNames[small]}" has ${members[small].length} training rows, fewer than ${MIN_ROWS}`);
    return { ids, members: members.map((m) => Int32Array.from(m)) };
  }
  if (!Number.isInteger(count) || count < 1) throw new SimDataError('--institutions', `expected a positive integer, got ${count}`);
  if (rows.length < count * MIN_ROWS) throw new SimDataError('--institutions', `${rows.length} training rows are too few for ${count} institutions of at least ${MIN_ROWS} rows`);
  const random = new SeededRandom(`${seed}:sim-split:${splitName(split)}:${count}`);
  const ids = Array.from({ length: count }, (_, k) => `inst-${k + 1}`);
  let last = '';
  for (let attempt = 0; attempt < 100; attempt++) {
    const members: number[][] = ids.map(() => []);
    const order = Array.from(rows);
    random.shuffle(order);
    if (split.kind === 'iid') order.forEach((r, i) => members[i % count].push(r));
    else if (split.kind === 'quantity') cutByShares(order, dirichletDraw(random, count, split.alpha), members);
    else {
      for (const label of [0, 1])
        cutByShares(
          order.filter((r) => labels[r] === label),
          dirichletDraw(random, count, split.alpha),
          members,
        );
    }
    const smallest = Math.min(...members.map((m) => m.length));
    if (smallest >= MIN_ROWS) return { ids, members: members.map((m) => Int32Array.from(m).sort()) };
    last = `a draw left an institution ${smallest} rows`;
  }
  throw new SimDataError(
    '--split',
    `${splitName(split)} over ${count} institutions: 100 draws each left an institution fewer than ${MIN_ROWS} rows (${last}); use a larger ALPHA or fewer institutions`,
  );
}
