// Redis-specific behaviour on the run's private server, seen from an attacker holding the leaked
// password: suppression blocks re-authentication (not only the open connections), the block is
// lifted exactly as it was found, and input errors are never retried.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import Redis from 'ioredis';
import type { RedisProvider } from '../activities/providers/redis';
import type { Target } from '../workflows/schemas';
import { testActivities } from './activities';
import { availableFixtures, redisFixture, type Connection } from './provider-fixtures';

const { missing } = availableFixtures();
if (missing.includes('redis')) console.warn('redis: SKIPPING: server not available on this machine (see test/services.ts)');
const denied = (p: Promise<unknown>) => p.then(() => false, () => true);
/** True when the login is refused; a login that works is closed again (and the assertion fails). */
const refused = (p: Promise<Connection>) => p.then(async (c) => (await c.close(), false), () => true);

describe('redis provider', { skip: missing.includes('redis') }, () => {
  const f = missing.includes('redis') ? undefined! : redisFixture(process.env.CORDON_REDIS_URL!, process.env.CORDON_TEST_REDIS_SETUP_URL!);
  const p = f?.provider as RedisProvider;
  const setup = missing.includes('redis') ? undefined! : new Redis(process.env.CORDON_TEST_REDIS_SETUP_URL!, { lazyConnect: true });
  const field = async (user: string, name: string) => {
    const raw = (await setup.call('ACL', 'GETUSER', user)) as unknown[];
    return raw[raw.indexOf(name) + 1] as string[];
  };
  const flags = (user: string) => field(user, 'flags');
  // Every connection a test opens is closed after it, passed or failed: an open one would keep
  // this file's process alive.
  const open: Connection[] = [];
  const connect = async (identityId: string, password: string) => {
    const c = await f.connect(identityId, password);
    open.push(c);
    return c;
  };
  afterEach(async () => void (await Promise.all(open.splice(0).map((c) => c.close()))));
  after(async () => {
    await f?.close();
    setup?.disconnect();
  });

  test('suppression blocks the leaked password: the attacker cannot log back in until rotation lets only the new one in', async () => {
    const s = await f.seed();
    const attacker = await connect(s.identityId, s.password);
    await attacker.approved();
    const r = await p.suppress(s.identityId, 'revoke-sessions');
    assert.ok(await denied(attacker.approved()), 'the live connection was killed');
    // What was measured succeeding before: the attacker simply re-authenticates.
    assert.ok(await refused(connect(s.identityId, s.password)), 'the leaked password no longer logs in');
    assert.ok(await refused(connect(s.identityId, s.password)), '…not on a second try either');
    assert.equal(r.changed, true);
    assert.equal(r.receipt?.onBefore, true, JSON.stringify(r.receipt));

    const fresh = `Rotated-${Date.now()}-Secret`;
    const rotated = await p.setSecret(s.identityId, fresh, r.receipt);
    assert.match(rotated.detail, /login block lifted/);
    assert.equal((await p.setSecret(s.identityId, fresh, r.receipt)).changed, false, 'rotation twice changes nothing');
    assert.ok(await refused(connect(s.identityId, s.password)), 'the leaked password stays dead after rotation');
    const owner = await connect(s.identityId, fresh);
    await owner.approved();
  });

  test('lift puts the user back exactly as suppression found it: on stays on, off stays off', async () => {
    const on = await f.seed();
    const r1 = await p.suppress(on.identityId, 'revoke-sessions');
    assert.ok((await flags(on.identityId)).includes('off'));
    assert.equal((await p.liftSuppression(on.identityId, 'revoke-sessions', r1.receipt)).changed, true);
    assert.ok((await flags(on.identityId)).includes('on'));
    const back = await connect(on.identityId, on.password);
    await back.approved();
    assert.equal((await p.liftSuppression(on.identityId, 'revoke-sessions', r1.receipt)).changed, false);

    const off = await f.seed();
    await setup.call('ACL', 'SETUSER', off.identityId, 'off');
    const r2 = await p.suppress(off.identityId, 'revoke-sessions');
    assert.equal(r2.receipt?.onBefore, false);
    await p.liftSuppression(off.identityId, 'revoke-sessions', r2.receipt);
    assert.ok((await flags(off.identityId)).includes('off'), 'a user that was off stays off after lift');
    await p.setSecret(off.identityId, `Rotated-${Date.now()}-Secret`, r2.receipt);
    assert.ok((await flags(off.identityId)).includes('off'), '…and after rotation');
  });

  test('a retried suppression, and a lift with no receipt, still know the user was on', async () => {
    const s = await f.seed();
    const first = await p.suppress(s.identityId, 'revoke-sessions');
    const retry = await p.suppress(s.identityId, 'revoke-sessions');
    assert.equal(retry.changed, false);
    assert.deepEqual(retry.receipt, first.receipt);
    // A containment whose workflow kept no receipt (started before receipts existed).
    assert.equal((await p.liftSuppression(s.identityId, 'revoke-sessions')).changed, true);
    assert.ok((await flags(s.identityId)).includes('on'));
    await connect(s.identityId, s.password);
  });

  test('the block marker is no grant, no counted password, and gone after lift', async () => {
    const s = await f.seed();
    const before = await p.inspect(s.identityId);
    await p.suppress(s.identityId, 'revoke-sessions');
    assert.deepEqual((await p.inspect(s.identityId)).grants, before.grants);
    const config = JSON.parse((await p.evidence(s.identityId, 'config-snapshot')).body)['config-snapshot'];
    assert.equal(config.passwordCount, 1, 'the block marker is not counted as a password');
    await p.liftSuppression(s.identityId, 'revoke-sessions');
    assert.equal((await field(s.identityId, 'passwords')).length, 1, 'only the real password is left');
  });

  test('input errors that retrying cannot fix are non-retryable, with the reason', async () => {
    const s = await f.seed();
    const dir = mkdtempSync(join(tmpdir(), 'cordon-redis-test-'));
    const a = testActivities(new Map([['redis', p]]), dir);
    const t: Target = { provider: 'redis', identityId: s.identityId, kind: 'service-account' };
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ['a rule Redis would not take', () => a.restoreGrants(t, ['+get', 'allkeys and more']), /allkeys and more/],
      ['a malformed keep rule', () => a.restrictGrants(t, ['+get', 'get']), /"get"/],
      ['a scope that is not a client id', () => a.suppress(t, 'revoke-sessions', { sessionId: 'abc' }), /client id/],
    ];
    for (const [what, run, reason] of cases) {
      await assert.rejects(run(), (err) => {
        assert.ok(err instanceof ApplicationFailure, `${what}: ${String(err)}`);
        assert.equal(err.nonRetryable, true, `${what} is not retried`);
        assert.equal(err.type, 'InvalidInput', what);
        assert.match(err.message, reason, what);
        return true;
      });
    }
    assert.ok((await flags(s.identityId)).includes('on'), 'nothing was changed');
  });
});
