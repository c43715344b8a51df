// The chain-verification banner shown on the overview and events pages: intact, broken (naming the first
// bad row), or still running (with the latest finished result, when there is one).
import type { VerificationState } from '../chain-verifier.ts';
import { esc } from '../html.ts';

export function verificationBanner(v: VerificationState, headSeq: number): string {
  const r = v.result;
  const running = v.pending ? ` A verification of the ledger as it is now (${headSeq} rows) is running; reload to see it.` : '';
  if (!r) return `<div class="banner pending" id="chain-status" data-ok="pending">Verifying the chain (${headSeq} rows)… reload to see the result.</div>`;
  if (r.ok) {
    return `<div class="banner ok" id="chain-status" data-ok="true" data-rows="${r.rows}">Chain intact: ${r.rows} rows; every hash, signature and countersignature holds, and the signed head matches.${esc(running)}</div>`;
  }
  return `<div class="banner broken" id="chain-status" data-ok="false" data-bad-row="${r.badRow}">Chain BROKEN at row ${r.badRow}: ${esc(r.reason)}${esc(running)}</div>`;
}
