// The bytes a CKKS key holder signs to publish the federation's public key for a run, so institutions
// encrypt only under a key that the holder they expect vouched for.
import { createHash } from 'node:crypto';

export function ckksKeyBinding(runId: string, keyHolder: string, publicKey: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(publicKey).digest();
  return new TextEncoder().encode(`dpfed.v1/ckks-public-key\0${runId}\0${keyHolder}\0${digest.toString('hex')}`);
}
