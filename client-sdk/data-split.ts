// The institution's local train/validation split, decided for each CSV row on its own: the row goes to
// validation when HMAC-SHA256(split key, the row's canonical text), read as a number in [0, 1), is below
// the validation fraction. No row's place depends on any other row, so removing or adding one row of the
// CSV changes the training set by exactly that row (the neighbouring relation that ε is about). Identical
// duplicate rows have the same text and always land on the same side together.
//
// The split key is a 32-byte secret from node:crypto that the institution keeps beside its identity key
// (mode 0600), so nobody else can tell which of its rows are validation rows. Keep it for the life of a
// federation: a new key (or another fraction) reshuffles every row. The validation split never leaves the
// institution; only its score histogram does.
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const SPLIT_KEY_BYTES = 32;

/** Loads the split key stored at `path` (hex), creating a random one (mode 0600) when absent. */
export function loadOrCreateSplitKey(path: string): Uint8Array {
  if (existsSync(path)) {
    const hex = readFileSync(path, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`split key file ${path}: expected ${SPLIT_KEY_BYTES * 2} hex characters`);
    return new Uint8Array(Buffer.from(hex, 'hex'));
  }
  const key = randomBytes(SPLIT_KEY_BYTES);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return new Uint8Array(key);
}

const NEEDS_QUOTES = /[",\r\n]/;

/**
 * A row's canonical text: its cells (as the CSV parser returns them, surrounding spaces removed) joined
 * by commas, a cell with a comma, quote or line break quoted as RFC 4180 writes it. The same row written
 * with other quoting, spacing or line endings has the same canonical text.
 */
export function canonicalRowText(cells: readonly string[]): string {
  let out = '';
  for (let i = 0; i < cells.length; i++) {
    const cell = cells[i];
    if (i > 0) out += ',';
    out += NEEDS_QUOTES.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell;
  }
  return out;
}

const TWO_POW_48 = 2 ** 48;

/** What the loader asks of a split: whether the row with this canonical text is a validation row. */
export interface SplitRule {
  isValidation(rowText: string): boolean;
}

export class RowSplitter implements SplitRule {
  private readonly key: Buffer;
  private readonly threshold: number;

  constructor(
    key: Uint8Array,
    readonly validationFraction: number,
  ) {
    if (key.length !== SPLIT_KEY_BYTES) throw new Error(`split key must be ${SPLIT_KEY_BYTES} bytes, got ${key.length}`);
    if (!(validationFraction > 0 && validationFraction < 1)) throw new Error(`validation fraction must be in (0, 1), got ${validationFraction}`);
    this.key = Buffer.from(key);
    this.threshold = validationFraction * TWO_POW_48;
  }

  /** True when the row with this canonical text belongs to the validation split. */
  isValidation(rowText: string): boolean {
    const digest = createHmac('sha256', this.key).update(rowText).digest();
    return digest.readUIntBE(0, 6) < this.threshold;
  }
}
