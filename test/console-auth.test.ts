// The console's password hashing and session store on their own: salted scrypt hashes that verify only
// the right password; sessions that expire, and a full store that drops anonymous sessions first.
import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '@dpfed/console/password-hash';
import { csrfMatches, SessionStore } from '@dpfed/console/sessions';

describe('console password hashes', () => {
  it('are salted scrypt hashes that verify the right password only', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$[0-9a-f]{32}\$[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('correct horsE', a)).toBe(false);
    expect(await verifyPassword('', a)).toBe(false);
    expect(await verifyPassword('correct horse', 'scrypt$1$1$1$00$00')).toBe(false);
    expect(await verifyPassword('correct horse', 'plain')).toBe(false);
    await expect(hashPassword('short')).rejects.toThrow(/password: must be at least 8 characters/);
  });
});

describe('console sessions', () => {
  it('expire, carry a CSRF token compared in full, and a full store drops anonymous sessions before logged-in ones', async () => {
    const store = new SessionStore(60_000, 4);
    const alice = store.create({ username: 'alice', role: 'compliance' });
    expect(store.get(alice.id)).toBe(alice);
    expect(csrfMatches(alice, alice.csrfToken)).toBe(true);
    expect(csrfMatches(alice, alice.csrfToken.slice(0, -1))).toBe(false);
    expect(csrfMatches(alice, undefined)).toBe(false);
    const anonymous = [store.create(), store.create(), store.create()];
    const bob = store.create({ username: 'bob', role: 'operator' });
    expect(store.get(alice.id)).toBe(alice);
    expect(store.get(bob.id)).toBe(bob);
    expect(anonymous.filter((s) => store.get(s.id)).length).toBe(2);
    store.destroyUser('alice');
    expect(store.get(alice.id)).toBeUndefined();

    const short = new SessionStore(20);
    const s = short.create({ username: 'carol', role: 'compliance' });
    await new Promise((r) => setTimeout(r, 40));
    expect(short.get(s.id)).toBeUndefined();
  });
});
