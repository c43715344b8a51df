// @dpfed/ckks: the optional CKKS plugin. privacy/ckks-plugin.ts loads this entry with import() when a run
// uses --aggregation ckks; `plugin` is checked against the interface the client and the coordinator use.
import type { CkksPlugin } from '@dpfed/privacy/ckks-plugin';
import { CkksAggregator, CkksDecryptor, CkksEncryptor, createFederationKeys } from './ckks.ts';

export const plugin = { createFederationKeys, CkksEncryptor, CkksAggregator, CkksDecryptor } satisfies CkksPlugin;
