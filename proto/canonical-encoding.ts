// Canonical encoding of signed records (privacy events, every ledger row, registration requests): the UTF-8
// domain string, one 0x00 byte, then each field in a fixed order as a one-byte type tag followed by
//   's' string: uint32 big-endian byte length, UTF-8 bytes (lone surrogates are refused, so no two strings
//       share an encoding)
//   'b' bytes:  uint32 big-endian length, the bytes
//   'f' double: IEEE-754 float64 big-endian (NaN refused; -0 written as +0)
//   'u' integer: uint64 big-endian (non-negative safe integers only)
// Every field is self-delimiting, so the encoding is unambiguous and identical on every machine.

export type CanonicalField = { s: string } | { b: Uint8Array } | { f: number } | { u: number };

/** A UTF-16 surrogate without its pair: such strings have no well-formed UTF-8 encoding. */
export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Deterministic, self-delimiting encoding of `fields` under `domain` (see the file header). */
export function encodeCanonical(domain: string, fields: readonly CanonicalField[]): Uint8Array {
  const parts: Buffer[] = [Buffer.from(domain, 'utf8'), Buffer.from([0])];
  const lengthPrefixed = (tag: string, bytes: Uint8Array) => {
    const head = Buffer.alloc(5);
    head.write(tag, 0, 'latin1');
    head.writeUInt32BE(bytes.length, 1);
    parts.push(head, Buffer.from(bytes));
  };
  for (const field of fields) {
    if ('s' in field) {
      if (typeof field.s !== 'string' || LONE_SURROGATE.test(field.s)) throw new Error('canonical encoding: string field is not well-formed text');
      lengthPrefixed('s', Buffer.from(field.s, 'utf8'));
    } else if ('b' in field) {
      lengthPrefixed('b', field.b);
    } else if ('f' in field) {
      if (typeof field.f !== 'number' || Number.isNaN(field.f)) throw new Error('canonical encoding: float field is NaN or not a number');
      const out = Buffer.alloc(9);
      out.write('f', 0, 'latin1');
      out.writeDoubleBE(field.f === 0 ? 0 : field.f, 1);
      parts.push(out);
    } else {
      if (!Number.isSafeInteger(field.u) || field.u < 0) throw new Error(`canonical encoding: integer field must be a non-negative safe integer, got ${field.u}`);
      const out = Buffer.alloc(9);
      out.write('u', 0, 'latin1');
      out.writeBigUInt64BE(BigInt(field.u), 1);
      parts.push(out);
    }
  }
  return new Uint8Array(Buffer.concat(parts));
}
