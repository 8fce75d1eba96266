// PostgreSQL-specific behaviour on the run's private server: grants by every grantor, sessions in
// every database, the exact connection limit back after a login block, statements that cannot
// hang on a lock or outlive a cancelled activity, and input errors that are never retried.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { PostgresProvider } from '../activities/providers/postgres';
import type { Target } from '../workflows/schemas';
import { testActivities } from './activities';
import { availableFixtures, postgresFixture } from './provider-fixtures';

const { missing } = availableFixtures();
const adminUrl = process.env.CORDON_POSTGRES_URL!;
const setupUrl = process.env.CORDON_TEST_POSTGRES_SETUP_URL!;
if (missing.includes('postgres')) console.warn('postgres: SKIPPING: server not available on this machine (see test/services.ts)');

/** Connects as the identity to one database, named as a client would name itself. */
async function connectAs(role: string, password: string, database: string, name = 'attacker-tool') {
  const u = new URL(adminUrl);
  const c = new pg.Client({ host: u.hostname, port: Number(u.port), user: role, password, database, application_name: name, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}
const dead = (c: pg.Client) => c.query('SELECT 1').then(() => false, () => true);
const within = <T>(ms: number, p: Promise<T>, what: string) =>
  Promise.race([p, new Promise<never>((_, no) => setTimeout(() => no(new Error(`${what}: still running after ${ms} ms`)), ms).unref())]);

describe('postgres provider', { skip: missing.includes('postgres') }, () => {
  const f = missing.includes('postgres') ? undefined! : postgresFixture(adminUrl, setupUrl);
  const p = f?.provider as PostgresProvider;
  let setup: pg.Pool;
  const sql = (text: string) => setup.query(text);
  const limitOf = async (role: string) => (await sql(`SELECT rolconnlimit FROM pg_roles WHERE rolname = '${role}'`)).rows[0].rolconnlimit as number;

  before(async () => {
    setup = new pg.Pool({ connectionString: setupUrl, max: 3 });
    await f.seed(); // the shared tables and roles
    // app_lead may pass on its read of payments, and Cordon's admin may act as app_lead; rogue
    // may pass on its read of customers, but Cordon's admin is not a member of rogue.
    await sql(`DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_lead') THEN
        CREATE ROLE app_lead NOLOGIN; CREATE ROLE rogue NOLOGIN; GRANT app_lead TO cordon_admin;
        GRANT SELECT ON payments TO app_lead WITH GRANT OPTION; GRANT SELECT ON customers TO rogue WITH GRANT OPTION;
      END IF;
    END $$`);
    if (!(await sql(`SELECT 1 FROM pg_database WHERE datname = 'reports'`)).rowCount) await sql('CREATE DATABASE reports');
  });
  after(async () => {
    await f?.close();
    await setup?.end();
  });

  test('restrict revokes a grant whichever grantor made it (GRANTED BY), leaving exactly keep', async () => {
    const s = await f.seed();
    // A second grant of the same privilege, made by app_lead rather than by the table's owner.
    await sql(`SET ROLE app_lead; GRANT SELECT ON payments TO ${s.identityId}; RESET ROLE`);
    const r = await p.restrict(s.identityId, s.keep);
    assert.equal(r.changed, true);
    assert.deepEqual((await p.inspect(s.identityId)).grants, s.keep, 'nothing beyond keep survives');
    const c = await connectAs(s.identityId, s.password, 'postgres');
    try {
      await assert.rejects(c.query('SELECT count(*) FROM payments'), /permission denied/);
    } finally {
      await c.end();
    }
    assert.equal((await p.restrict(s.identityId, s.keep)).changed, false, 'a second restrict changes nothing');
  });

  test('restrict that cannot revoke a grant fails non-retryably, naming the survivor and its grantor', async () => {
    const s = await f.seed();
    await sql(`SET ROLE rogue; GRANT SELECT ON customers TO ${s.identityId}; RESET ROLE`);
    const activities = activitiesOn(p);
    const target: Target = { provider: 'postgres', identityId: s.identityId, kind: 'database-role' };
    await assert.rejects(activities.restrictGrants(target, s.keep), (err) => {
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.nonRetryable, true);
      assert.match(err.message, /table:public\.customers:SELECT/);
      assert.match(err.message, /rogue/);
      return true;
    });
    // Everything Cordon could revoke is revoked; only rogue's grant is left.
    assert.deepEqual((await p.inspect(s.identityId)).grants, [...s.keep, 'table:public.customers:SELECT'].sort());
  });

  test('role@db: suppression ends the role\'s sessions in every database, not only its own', async () => {
    const s = await f.seed();
    const here = await connectAs(s.identityId, s.password, 'postgres');
    const there = await connectAs(s.identityId, s.password, 'reports');
    try {
      const r = await p.suppress(`${s.identityId}@postgres`, 'revoke-sessions');
      assert.ok(await dead(here), 'the session in the scoped database ended');
      assert.ok(await dead(there), 'the session in another database ended too: the password and the block are cluster-wide');
      assert.equal(r.ended?.length, 2, JSON.stringify(r.ended));
      assert.equal((await p.inspect(`${s.identityId}@postgres`)).sessions, 0);
      await assert.rejects(connectAs(s.identityId, s.password, 'reports').then((c) => c.end()), 'blocked in every database');
    } finally {
      await Promise.all([here.end().catch(() => undefined), there.end().catch(() => undefined)]);
    }
  });

  test('the kinds of one evidence capture share their reads; a capture after a suppression reads afresh', async () => {
    const s = await f.seed();
    const conn = await connectAs(s.identityId, s.password, 'reports');
    const query = pg.Pool.prototype.query;
    let queries = 0;
    pg.Pool.prototype.query = function (this: pg.Pool, ...args: unknown[]) {
      queries++;
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query;
    try {
      const id = `${s.identityId}@reports`;
      const capture = async () => Object.fromEntries(await Promise.all((['sessions', 'auth-events', 'grants'] as const).map(async (k) => [k, JSON.parse((await p.evidence(id, k)).body)[k]])));
      const during = await capture();
      assert.equal(queries, 3, 'one role lookup, one read of pg_stat_activity for sessions and auth events, one of the grants');
      assert.equal(during.sessions.length, 1);
      assert.deepEqual(during['auth-events'].connections, during.sessions);
      assert.equal(during.grants.database, 'reports', 'the database the grants were read in');
      await p.suppress(id, 'revoke-sessions');
      const after = await capture();
      assert.deepEqual(after.sessions, [], 'read after the suppression, not shared with the capture before it');
    } finally {
      pg.Pool.prototype.query = query;
      await conn.end().catch(() => undefined);
    }
  });

  test('the connection limit before a login block comes back exactly at rotation and at lift', async () => {
    const s = await f.seed();
    await sql(`ALTER ROLE ${s.identityId} CONNECTION LIMIT 7`);
    const first = await p.suppress(s.identityId, 'revoke-sessions');
    assert.equal(await limitOf(s.identityId), 0, 'blocked');
    assert.equal(first.receipt?.connectionLimitBefore, 7);
    // A retry (the first attempt's acknowledgement lost) must not mistake the block for the original.
    assert.equal((await p.suppress(s.identityId, 'revoke-sessions')).receipt?.connectionLimitBefore, 7);
    const rotated = await p.setSecret(s.identityId, `Rotated-${Date.now()}-Secret`, first.receipt);
    assert.match(rotated.detail, /login block lifted/);
    assert.equal(await limitOf(s.identityId), 7, 'rotation restores 7, not -1');

    const again = await p.suppress(s.identityId, 'revoke-sessions');
    assert.equal(await limitOf(s.identityId), 0);
    assert.equal((await p.liftSuppression(s.identityId, 'revoke-sessions', again.receipt)).changed, true);
    assert.equal(await limitOf(s.identityId), 7, 'lift restores 7');
    assert.equal((await p.liftSuppression(s.identityId, 'revoke-sessions', again.receipt)).changed, false);
  });

  test('a role at CONNECTION LIMIT 0 on purpose stays at 0 after rotation and after lift', async () => {
    const s = await f.seed();
    await sql(`ALTER ROLE ${s.identityId} CONNECTION LIMIT 0`);
    const r = await p.suppress(s.identityId, 'revoke-sessions');
    assert.equal(r.receipt?.connectionLimitBefore, 0);
    await p.setSecret(s.identityId, `Rotated-${Date.now()}-Secret`, r.receipt);
    assert.equal(await limitOf(s.identityId), 0, 'rotation leaves the deliberate block');
    await p.liftSuppression(s.identityId, 'revoke-sessions', r.receipt);
    assert.equal(await limitOf(s.identityId), 0, 'lift leaves the deliberate block');
  });

  test('without a receipt or marker (a block set by older code), rotation and lift still lift to -1', async () => {
    const s = await f.seed();
    await sql(`ALTER ROLE ${s.identityId} CONNECTION LIMIT 0`);
    await p.setSecret(s.identityId, `Rotated-${Date.now()}-Secret`);
    assert.equal(await limitOf(s.identityId), -1);
    await sql(`ALTER ROLE ${s.identityId} CONNECTION LIMIT 0`);
    await p.liftSuppression(s.identityId, 'revoke-sessions');
    assert.equal(await limitOf(s.identityId), -1);
  });

  test('a REVOKE blocked by a lock held elsewhere fails within lock_timeout and changes nothing', async () => {
    const s = await f.seed();
    const before = (await p.inspect(s.identityId)).grants;
    const holder = await setup.connect();
    try {
      // An open transaction that changed the same catalog row (payments' ACL) holds it until it ends.
      await holder.query('BEGIN');
      await holder.query('GRANT UPDATE ON payments TO analytics');
      const t0 = Date.now();
      await assert.rejects(within(15_000, p.restrict(s.identityId, s.keep), 'restrict'), /lock timeout/);
      assert.ok(Date.now() - t0 < 10_000, `failed after ${Date.now() - t0} ms`);
      await holder.query('COMMIT');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    assert.deepEqual((await p.inspect(s.identityId)).grants, before, 'the whole restrict rolled back');
    await sql('REVOKE UPDATE ON payments FROM analytics');
  });

  test('a cancelled activity cancels its blocked REVOKE: nothing commits after the cancellation', async () => {
    const s = await f.seed();
    const before = (await p.inspect(s.identityId)).grants;
    const patient = new PostgresProvider(adminUrl, { lockTimeoutMs: 60_000 }); // only cancellation can end the wait
    const holder = await setup.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('GRANT UPDATE ON payments TO analytics');
      const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300 });
      let beats = 0;
      env.on('heartbeat', () => beats++);
      const target: Target = { provider: 'postgres', identityId: s.identityId, kind: 'database-role' };
      const running = env.run(activitiesOn(patient).restrictGrants, target, s.keep);
      await new Promise((r) => setTimeout(r, 700)); // the REVOKE is now waiting on the lock
      assert.ok(beats >= 2, `the waiting activity heartbeats (${beats} beats): that is how a cancellation reaches it`);
      env.cancel();
      await assert.rejects(within(5000, running, 'cancelled restrict'), CancelledFailure);
      await holder.query('COMMIT'); // the lock goes away: a REVOKE still queued would now commit
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
      await patient.close();
    }
    assert.deepEqual((await p.inspect(s.identityId)).grants, before, 'nothing was revoked after the cancellation');
    await sql('REVOKE UPDATE ON payments FROM analytics');
  });

  test('input errors that retrying cannot fix are non-retryable, with the reason', async () => {
    const s = await f.seed();
    const a = activitiesOn(p);
    const t = (identityId: string): Target => ({ provider: 'postgres', identityId, kind: 'database-role' });
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ['a malformed keep rule', () => a.restrictGrants(t(s.identityId), ['table:orders:SELECT']), /table:orders:SELECT/],
      ['a malformed grant to restore', () => a.restoreGrants(t(s.identityId), ['everything']), /everything/],
      ['a scope that is not a backend pid', () => a.suppress(t(s.identityId), 'revoke-sessions', { sessionId: 'abc' }), /pid/],
      ['an identity id with an empty database', () => a.suppress(t(`${s.identityId}@`), 'revoke-sessions'), /identity id/],
      ['an identity id with an empty role', () => a.setEnabled(t('@postgres'), false), /identity id/],
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
    assert.ok((await p.inspect(s.identityId)).grants.length > s.keep.length, 'nothing was revoked');
  });

  test('a database that does not exist is a missing identity, not a retried error', async () => {
    const s = await f.seed();
    assert.equal((await p.inspect(`${s.identityId}@no_such_db`)).exists, false);
    await assert.rejects(
      activitiesOn(p).suppress({ provider: 'postgres', identityId: `${s.identityId}@no_such_db`, kind: 'database-role' }, 'revoke-sessions'),
      (err) => err instanceof ApplicationFailure && err.nonRetryable && err.type === 'IdentityNotFound',
    );
  });
});

function activitiesOn(provider: PostgresProvider) {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-pg-test-'));
  return testActivities(new Map([['postgres', provider]]), dir);
}
