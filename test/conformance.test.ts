// The contract every provider keeps, run against each one (lab, and the real PostgreSQL, Redis
// and Keycloak servers; Keycloak twice: a user and a service-account client): every action is idempotent, restore is exact, missing identities are
// reported as such, protected identities are refused, evidence never holds a secret.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { IdentityNotFoundError, NotSupportedError } from '../activities/providers/provider';
import { EVIDENCE_KINDS, SUPPRESSION_ACTIONS, type Receipt } from '../workflows/schemas';
import { availableFixtures, type ProviderFixture } from './provider-fixtures';

const { fixtures, missing } = availableFixtures({ keycloak: true });
if (missing.length) console.warn(`conformance: SKIPPING ${missing.join(', ')}: server not available on this machine (see test/services.ts)`);

for (const make of fixtures) {
  const f: ProviderFixture = make();
  describe(`provider conformance: ${f.name}`, () => {
    const p = f.provider;
    /** The name a session opened by the program `client` carries: its own, except where the provider says otherwise (see nameSeen). */
    const named = (identityId: string, client: string) => f.nameSeen?.(identityId, client) ?? client;
    before(async () => void (await f.seed())); // creates shared objects once
    after(() => f.close());

    test('inspect shows the identity, its grants and live sessions; a missing one is exists:false', async () => {
      const s = await f.seed();
      const conn = await f.connect(s.identityId, s.password);
      const snap = await p.inspect(s.identityId);
      assert.equal(snap.exists, true);
      assert.equal(snap.enabled, true);
      assert.ok(snap.grants.length > s.keep.length, `seeded grants beyond the minimum: ${snap.grants}`);
      for (const k of s.keep) assert.ok(snap.grants.includes(k), `${k} in ${snap.grants}`);
      assert.ok(snap.sessions >= 1);
      assert.deepEqual(await p.inspect('no-such-identity-42'), { exists: false, enabled: false, grants: [], sessions: 0 });
      await conn.close();
    });

    test('every mutating action on a missing identity fails with IdentityNotFound', async () => {
      const id = 'no-such-identity-42';
      for (const run of [
        () => p.suppress(id, 'revoke-sessions'),
        () => p.restrict(id, []),
        () => p.restore(id, []),
        () => p.setSecret(id, 'Secret-123456789'),
        () => p.setEnabled(id, false),
        () => p.evidence(id, 'grants'),
        () => p.dependents(id),
      ]) {
        await assert.rejects(run(), (err) => err instanceof IdentityNotFoundError && err.message.includes(id));
      }
    });

    test('suppression: each action twice, the second changes nothing and hands back the same receipt; sessions end', async () => {
      const s = await f.seed();
      const conn = await f.connect(s.identityId, s.password);
      const receipts = new Map<string, Receipt | undefined>();
      for (const action of SUPPRESSION_ACTIONS) {
        const first = await p.suppress(s.identityId, action);
        const again = await p.suppress(s.identityId, action);
        assert.equal(again.changed, false, `${action} twice: ${again.detail}`);
        // A retry whose first attempt's result was lost must still know how to undo exactly.
        assert.deepEqual(again.receipt, first.receipt, `${action}: the retry's receipt`);
        receipts.set(action, first.receipt);
      }
      assert.equal((await p.inspect(s.identityId)).sessions, 0);
      await assert.rejects(conn.approved(), 'the session is dead');
      // Lifting hands back the first call's receipt, as the workflow keeps it.
      for (const action of SUPPRESSION_ACTIONS) {
        await p.liftSuppression(s.identityId, action, receipts.get(action));
        assert.equal((await p.liftSuppression(s.identityId, action, receipts.get(action))).changed, false, `lift ${action} twice`);
      }
      const back = await f.connect(s.identityId, s.password);
      await back.approved(); // lifted: the identity logs in again as before
      await Promise.all([conn.close(), back.close()]);
    });

    test('suppression names the sessions it ended (client name, address, when it started)', async () => {
      const s = await f.seed();
      const conn = await f.connect(s.identityId, s.password);
      const r = await p.suppress(s.identityId, 'revoke-sessions');
      const mine = (r.ended ?? []).filter((d) => d.name === named(s.identityId, 'attacker-tool'));
      assert.equal(mine.length, 1, `ended: ${JSON.stringify(r.ended)}`);
      assert.equal(mine[0]!.address, '127.0.0.1');
      assert.ok(mine[0]!.lastSeen && !Number.isNaN(Date.parse(mine[0]!.lastSeen)), `lastSeen: ${mine[0]!.lastSeen}`);
      assert.deepEqual((await p.suppress(s.identityId, 'revoke-sessions')).ended ?? [], [], 'nothing more to end the second time');
      await p.liftSuppression(s.identityId, 'revoke-sessions', r.receipt);
      await conn.close();
    });

    test('dependents leave out the sessions suppression ended: the attacker is not a dependent', async () => {
      const s = await f.seed();
      const attacker = await f.connect(s.identityId, s.password);
      const r = await p.suppress(s.identityId, 'revoke-sessions');
      assert.ok(r.ended?.length, 'the attacker session was ended');
      await p.liftSuppression(s.identityId, 'revoke-sessions', r.receipt);
      // The same client comes back (say, before rotation on a lab directory) beside a real dependent.
      const again = await f.connect(s.identityId, s.password);
      const app = await f.connect(s.identityId, s.password, 'billing-app');
      const all = (await p.dependents(s.identityId)).map((d) => d.name).sort();
      assert.deepEqual(all, [named(s.identityId, 'attacker-tool'), named(s.identityId, 'billing-app')].sort());
      assert.deepEqual((await p.dependents(s.identityId, r.ended)).map((d) => d.name), [named(s.identityId, 'billing-app')]);
      await Promise.all([attacker.close(), again.close(), app.close()]);
    });

    test('restrict narrows to the minimum (never adds), twice is a no-op; restore is exact, twice a no-op', async () => {
      const s = await f.seed();
      const before = (await p.inspect(s.identityId)).grants;
      const r1 = await p.restrict(s.identityId, [...s.keep, s.notHeld]);
      assert.equal(r1.changed, true, r1.detail);
      const narrowed = (await p.inspect(s.identityId)).grants;
      assert.ok(!narrowed.includes(s.notHeld), 'restrict never adds');
      for (const g of narrowed) assert.ok(before.includes(g), `${g} was there before`);
      for (const k of s.keep) assert.ok(narrowed.includes(k), `${k} kept`);
      assert.equal((await p.restrict(s.identityId, s.keep)).changed, false);
      const back = await p.restore(s.identityId, before);
      assert.equal(back.changed, true, back.detail);
      assert.deepEqual((await p.inspect(s.identityId)).grants, before);
      assert.equal((await p.restore(s.identityId, before)).changed, false);
    });

    test('a new secret: the old one stops working, the new one works; setting it twice changes nothing', async () => {
      const s = await f.seed();
      const fresh = `New-${Math.random().toString(36).slice(2)}-Secret`;
      assert.equal((await p.setSecret(s.identityId, fresh)).changed, true);
      assert.equal((await p.setSecret(s.identityId, fresh)).changed, false);
      await assert.rejects(f.connect(s.identityId, s.password), 'the old password is refused');
      const conn = await f.connect(s.identityId, fresh);
      await conn.approved();
      await conn.close();
    });

    test('disable ends sessions and refuses logins; enable brings logins back; each twice is a no-op', async () => {
      const s = await f.seed();
      const conn = await f.connect(s.identityId, s.password);
      assert.equal((await p.setEnabled(s.identityId, false)).changed, true);
      assert.equal((await p.setEnabled(s.identityId, false)).changed, false);
      assert.equal((await p.inspect(s.identityId)).enabled, false);
      await assert.rejects(conn.approved(), 'the open session was ended');
      await assert.rejects(f.connect(s.identityId, s.password), 'a disabled identity cannot log in');
      assert.equal((await p.setEnabled(s.identityId, true)).changed, true);
      assert.equal((await p.setEnabled(s.identityId, true)).changed, false);
      const again = await f.connect(s.identityId, s.password);
      await again.outside();
      await Promise.all([conn.close(), again.close()]);
    });

    test('evidence of every kind is JSON about the identity and holds no secret, old or rotated', async () => {
      const s = await f.seed();
      // The secrets that really flow: the password the live session logged in with (and sent in a
      // statement the server keeps as session state), then the rotated one, used the same way.
      const check = async (secret: string, when: string) => {
        const forms = [secret, Buffer.from(secret).toString('base64'), createHash('sha256').update(secret).digest('hex')];
        for (const kind of EVIDENCE_KINDS) {
          const e = await p.evidence(s.identityId, kind);
          assert.equal(e.contentType, 'application/json');
          const body = JSON.parse(e.body);
          assert.equal(body.identityId, s.identityId);
          assert.ok(kind in body, `${kind} present`);
          for (const form of forms) assert.ok(!e.body.includes(form), `${when}: no secret (or its hash) in ${kind}`);
        }
      };
      const conn = await f.connect(s.identityId, s.password);
      await conn.carry?.(s.password);
      await check(s.password, 'before rotation');
      const fresh = `Rotated-${randomUUID()}`;
      await p.setSecret(s.identityId, fresh);
      const owner = await f.connect(s.identityId, fresh);
      await owner.carry?.(fresh);
      await check(fresh, 'after rotation');
      await Promise.all([conn.close(), owner.close()]);
    });

    test('dependents name the clients using the identity', async () => {
      const s = await f.seed();
      const conn = await f.connect(s.identityId, s.password);
      const deps = await p.dependents(s.identityId);
      assert.ok(deps.length >= 1, 'the open connection is a dependent');
      await conn.close();
    });

    if (f.protectedId) {
      test(`refuses to contain ${f.protectedId}`, async () => {
        await assert.rejects(p.setEnabled(f.protectedId!, false), (err) => err instanceof NotSupportedError && /refusing/.test(err.message));
        await assert.rejects(p.suppress(f.protectedId!, 'revoke-sessions'), NotSupportedError);
        assert.equal((await p.inspect(f.protectedId!)).enabled, true, 'left untouched');
      });
    }
  });
}
