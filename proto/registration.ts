// The bytes an institution signs to register: binds its id and identity key to a fresh nonce, so a
// registration cannot be replayed under another id or key.
const encoder = new TextEncoder();

export function registrationMessage(institutionId: string, identityPublicKey: Uint8Array, nonce: Uint8Array): Uint8Array {
  const id = encoder.encode(institutionId);
  const prefix = encoder.encode('dpfed.v1/register');
  const out = new Uint8Array(prefix.length + 4 + id.length + identityPublicKey.length + nonce.length);
  let o = 0;
  out.set(prefix, o); o += prefix.length;
  new DataView(out.buffer).setUint32(o, id.length); o += 4;
  out.set(id, o); o += id.length;
  out.set(identityPublicKey, o); o += identityPublicKey.length;
  out.set(nonce, o);
  return out;
}

export const INSTITUTION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
