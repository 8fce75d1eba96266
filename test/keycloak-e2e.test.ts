// Keycloak seen from the attacker, through the real workflow and a real worker: a user whose
// refresh and offline tokens were taken (password grant), a client whose secret was taken (client
// credentials). Measures how long after the signal the stolen tokens stop working, checks they
// never come back, and that rollback gives the owner back a working credential and exactly the
// roles and groups they had. Then what only Keycloak has: step-up and high-risk-role receipts,
// offline tokens, refusals, the admin client's least privilege, evidence without secrets.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { describeProviders, loadConfig, type CordonConfig } from '../activities/config';
import { formatGrant, KeycloakAdmin, KeycloakProvider, parseGrant, parseIdentity } from '../activities/providers/keycloak';
import { IdentityNotFoundError, NotSupportedError } from '../activities/providers/provider';
import { stripSecrets } from '../activities/providers/common';
import { LocalVault } from '../activities/secret-sink';
import { describeContainment, submitSignal } from '../client/containments';
import { clientCredentialsGrant, claims, introspect, OidcError, passwordGrant, refreshGrant } from '../scripts/identity-connections';
import { TEST_OPERATORS } from '../scripts/local-keycloak';
import type { z } from 'zod';
import { EVIDENCE_KINDS, type CommandType, type ContainmentState, type StagePlan as StagePlanSchema } from '../workflows/schemas';
import { eventually, policyWith, signal } from './fixtures';
import { findSecret } from '../scripts/secret-scan';
import { assertNoSecrets, closeTestEnv, isolatedConfig, operate, withWorker } from './harness';
import { KEYCLOAK_SEED, keycloakClientToken, keycloakFixture, keycloakSetup, keycloakSignIn } from './provider-fixtures';
import { inCI, testKeycloak } from './services';

after(closeTestEnv);

const kc = testKeycloak();
if (!kc) {
  if (inCI()) throw new Error('keycloak-e2e: no Keycloak in CI (test/services.ts starts it)');
  console.warn('keycloak-e2e: SKIPPING: Keycloak not available on this machine (see test/services.ts)');
}

/**
 * Every operator command of this file goes through here, so the command path (signed, authenticated
 * commands) can be swapped in one place.
 */
async function operator(client: Client, cfg: CordonConfig, workflowId: string, type: CommandType, reason: string, token?: string): Promise<void> {
  await operate(client, cfg, workflowId, { type, reason }, { token });
}

const approvalStages = (keep: string[]): z.input<typeof StagePlanSchema>[] => [
  { stage: 'restrict', gate: { type: 'approval' }, keep },
  { stage: 'rotate', gate: { type: 'approval' } },
  { stage: 'disable', gate: { type: 'approval' } },
];
const refused = (p: Promise<unknown>) => p.then(() => false, () => true);
const rolesIn = (jwt: string) => {
  const c = claims(jwt);
  return [...(c.realm_access?.roles ?? []), ...Object.entries(c.resource_access ?? {}).flatMap(([client, r]) => r.roles.map((x) => `${client}:${x}`))];
};

/** Polls `check` until it is true; returns the milliseconds from `t0`. */
async function timeUntil(t0: number, what: string, check: () => Promise<boolean>, timeoutMs = 20_000, last?: () => string): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return performance.now() - t0;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last: ${last()})` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The same check, repeated for `ms`: a cut-off that comes back is a failure. */
async function staysTrue(what: string, check: () => Promise<boolean>, ms = 2000): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    assert.ok(await check(), `${what} came back`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

if (kc) {
  const setup = keycloakSetup(kc);

  describe('keycloak end to end, seen from the attacker', () => {
    const user = keycloakFixture(kc, 'user');
    const client = keycloakFixture(kc, 'client');
    after(async () => Promise.all([user.close(), client.close()]));

    test('a user: stolen refresh and offline tokens die at suppression and stay dead; rollback gives the owner a new password and every role and group back', async () => {
      const s = await user.seed();
      const { name } = parseIdentity(s.identityId)!;
      const original = await user.provider.inspect(s.identityId);
      // The attacker signed in with the password: a refresh token, and an offline token that outlives logout.
      let stolen = await passwordGrant(kc.issuer, 'test-app', name, s.password);
      const offline = await passwordGrant(kc.issuer, 'test-app', name, s.password, 'openid offline_access');
      assert.ok(rolesIn(stolen.access_token).includes('payments-admin'), 'full reach before');
      const stolenAccess = stolen.access_token;
      let lastRefresh = 'not tried';
      const refreshDead = async () => {
        try {
          stolen = await refreshGrant(kc.issuer, 'test-app', stolen.refresh_token!);
          lastRefresh = 'refreshed';
          return false;
        } catch (err) {
          lastRefresh = String(err);
          return err instanceof OidcError && err.error === 'invalid_grant';
        }
      };
      const offlineDead = () => refused(refreshGrant(kc.issuer, 'test-app', offline.refresh_token!));
      const accessDead = async () => !(await introspect(kc.issuer, kc.introspector, stolenAccess)).active;

      // Operators here are the real Keycloak's: the worker verifies their tokens against its JWKS.
      const base = isolatedConfig({ ...user.config, policy: policyWith(approvalStages(s.keep), { suppress: ['revoke-sessions', 'revoke-tokens'], evidence: [...EVIDENCE_KINDS] }) });
      const cfg = { ...base, oidc: { ...base.oidc, issuer: kc.issuer } };
      const vault = new LocalVault(cfg.vaultDir);
      await withWorker(cfg, async ({ client: temporal }) => {
        const sig = signal({ provider: 'keycloak', identityId: s.identityId, identityKind: 'human', trigger: 'impossible-travel' });
        const t0 = performance.now();
        const { workflowId } = await submitSignal(temporal, sig, { taskQueue: cfg.taskQueue });
        const [refreshMs, introspectMs, offlineMs] = await Promise.all([timeUntil(t0, 'the refresh to fail', refreshDead, 20_000, () => lastRefresh), timeUntil(t0, 'introspection to say inactive', accessDead), timeUntil(t0, 'the offline token to fail', offlineDead)]);
        console.log(`keycloak user: after submit, refresh refused at ${refreshMs.toFixed(0)} ms, access token inactive at ${introspectMs.toFixed(0)} ms, offline token refused at ${offlineMs.toFixed(0)} ms`);
        await staysTrue('the stolen tokens', async () => {
          const [refresh, access, off] = [await refreshDead(), await accessDead(), await offlineDead()];
          if (!(refresh && access && off)) console.log(`keycloak user: alive again: refresh ${!refresh}, access ${!access}, offline ${!off} (last refresh: ${lastRefresh})`);
          return refresh && access && off;
        });

        const until = (what: string, ok: (st: ContainmentState) => boolean) => eventually(async () => ok(await describeContainment(temporal, workflowId)) && describeContainment(temporal, workflowId), what);
        const advance = async (to: ContainmentState['position']) => {
          await until(`approval before ${to}`, (st) => st.waiting?.for === 'approval');
          await operator(temporal, cfg, workflowId, 'advance', `approve ${to}`, await kc.operatorToken('ann'));
          return until(to, (st) => st.position === to);
        };
        const suppressed = await until('suppressed', (st) => st.position === 'suppressed');
        // A token from the dev issuer means nothing to a worker that trusts Keycloak.
        await assert.rejects(operator(temporal, cfg, workflowId, 'hold', 'wrong issuer'), /token refused/);
        assert.ok(suppressed.actions.some((a) => a.action === 'suppress:revoke-tokens' && a.outcome === 'done'), 'revoke-tokens did something: the offline token');

        await advance('restricted');
        assert.deepEqual((await user.provider.inspect(s.identityId)).grants, s.keep, 'narrowed to the approved minimum');

        const rotated = await advance('rotated');
        assert.ok(await refused(passwordGrant(kc.issuer, 'test-app', name, s.password)), 'the stolen password no longer signs in');
        const fresh = (await vault.read(rotated.receipts.rotated!.ref)).secret;
        await assert.rejects(passwordGrant(kc.issuer, 'test-app', name, fresh), /not fully set up/, 'the issued password is temporary');
        const owner = await keycloakSignIn(kc, name, fresh); // the browser asks the owner for their own password
        assert.ok(rolesIn(owner.access_token).includes('orders-reader'));
        assert.ok(!rolesIn(owner.access_token).includes('payments-admin'), 'nothing beyond the minimum');

        await advance('disabled');
        assert.ok(await refused(refreshGrant(kc.issuer, 'test-app', owner.refresh_token!)), 'the session ended at disable');
        assert.ok(await refused(keycloakSignIn(kc, name, fresh)), 'nothing signs in after disable');

        await operator(temporal, cfg, workflowId, 'rollback', 'false positive', await kc.operatorToken('cleo'));
        const done = await until('rolled back', (st) => st.status === 'rolled-back');
        const { runId } = await temporal.workflow.getHandle(workflowId).describe();
        const reissued = (await vault.read(LocalVault.refFor(`${workflowId}/${runId}/reissue`))).secret;
        const back = await keycloakSignIn(kc, name, reissued);
        for (const role of ['orders-reader', 'payments-admin', 'reports-viewer', 'test-app:exports']) assert.ok(rolesIn(back.access_token).includes(role), `${role} is back`);
        const now = await user.provider.inspect(s.identityId);
        assert.deepEqual({ enabled: now.enabled, grants: now.grants }, { enabled: original.enabled, grants: original.grants }, 'roles and groups exactly as before');
        assert.ok(done.actions.some((a) => a.action === 'rollback:restrict' && a.outcome === 'done'));
        // Rollback gives access back to the owner, never to the attacker.
        assert.ok((await refreshDead()) && (await accessDead()) && (await offlineDead()), 'the stolen tokens stay dead after rollback');
        assert.ok(await refused(passwordGrant(kc.issuer, 'test-app', name, s.password)), 'the stolen password stays dead');

        const secrets = [s.password, fresh, reissued, stolenAccess, stolen.refresh_token!, offline.refresh_token!, owner.refresh_token!, back.access_token, kc.admin.secret];
        // History, the worker's log, every evidence and vault file of this file's workers.
        const scan = await assertNoSecrets(temporal, [workflowId], secrets);
        assert.ok(scan.evidenceFiles >= EVIDENCE_KINDS.length && scan.logLines > 0, `every kind of evidence and the log were scanned: ${JSON.stringify(scan)}`);
      });
    });

    test('a client: its stolen token dies at suppression and stays dead, the stolen secret at rotation; rollback restores the service account exactly', async () => {
      const s = await client.seed();
      const { name } = parseIdentity(s.identityId)!;
      const original = await client.provider.inspect(s.identityId);
      const stolen = (await clientCredentialsGrant(kc.issuer, name, s.password)).access_token;
      assert.ok((await introspect(kc.issuer, kc.introspector, stolen)).active);
      const dead = async () => !(await introspect(kc.issuer, kc.introspector, stolen)).active;

      const cfg = isolatedConfig({ ...client.config, policy: policyWith(approvalStages(s.keep), { suppress: ['revoke-sessions', 'revoke-tokens'], evidence: [...EVIDENCE_KINDS] }) });
      const vault = new LocalVault(cfg.vaultDir);
      await withWorker(cfg, async ({ client: temporal }) => {
        const sig = signal({ provider: 'keycloak', identityId: s.identityId, identityKind: 'service-account', trigger: 'secret-exposed' });
        const t0 = performance.now();
        const { workflowId } = await submitSignal(temporal, sig, { taskQueue: cfg.taskQueue });
        console.log(`keycloak client: after submit, the stolen access token inactive at ${(await timeUntil(t0, 'introspection to say inactive', dead)).toFixed(0)} ms`);
        await staysTrue('the stolen token', dead);

        const until = (what: string, ok: (st: ContainmentState) => boolean) => eventually(async () => ok(await describeContainment(temporal, workflowId)) && describeContainment(temporal, workflowId), what);
        const advance = async (to: ContainmentState['position']) => {
          await until(`approval before ${to}`, (st) => st.waiting?.for === 'approval');
          await operator(temporal, cfg, workflowId, 'advance', `approve ${to}`);
          return until(to, (st) => st.position === to);
        };
        await until('suppressed', (st) => st.position === 'suppressed');
        await advance('restricted');
        assert.deepEqual((await client.provider.inspect(s.identityId)).grants, s.keep, 'the service account narrowed to the approved minimum');

        const rotated = await advance('rotated');
        assert.ok(await refused(clientCredentialsGrant(kc.issuer, name, s.password)), 'the stolen secret no longer gets a token');
        const fresh = (await vault.read(rotated.receipts.rotated!.ref)).secret;
        const owner = await keycloakClientToken(kc, name, fresh);
        assert.ok((await introspect(kc.issuer, kc.introspector, owner.access_token)).active, 'the new secret works');
        assert.deepEqual(rolesIn(owner.access_token).filter((r) => KEYCLOAK_SEED.realmRoles.includes(r)), ['orders-reader'], 'nothing beyond the minimum');

        await advance('disabled');
        assert.ok(!(await introspect(kc.issuer, kc.introspector, owner.access_token)).active, "the owner's token ended at disable");
        assert.ok(await refused(clientCredentialsGrant(kc.issuer, name, fresh)), 'a disabled client gets no token');

        await operator(temporal, cfg, workflowId, 'rollback', 'false positive');
        await until('rolled back', (st) => st.status === 'rolled-back');
        const { runId } = await temporal.workflow.getHandle(workflowId).describe();
        const reissued = (await vault.read(LocalVault.refFor(`${workflowId}/${runId}/reissue`))).secret;
        const back = await keycloakClientToken(kc, name, reissued);
        assert.ok((await introspect(kc.issuer, kc.introspector, back.access_token)).active);
        for (const role of ['orders-reader', 'payments-admin', 'reports-viewer', 'test-app:exports']) assert.ok(rolesIn(back.access_token).includes(role), `${role} is back`);
        const now = await client.provider.inspect(s.identityId);
        assert.deepEqual({ enabled: now.enabled, grants: now.grants }, { enabled: original.enabled, grants: original.grants });
        assert.ok(await dead(), 'the stolen token stays dead after rollback');
        assert.ok(await refused(clientCredentialsGrant(kc.issuer, name, s.password)), 'the stolen secret stays dead');

        const secrets = [s.password, fresh, reissued, stolen, owner.access_token, back.access_token, kc.admin.secret];
        await assertNoSecrets(temporal, [workflowId], secrets);
      });
    });

    test('the shipped policy on a low-confidence human signal only steps up: no session is revoked, the next sign-in asks for more', async () => {
      const s = await user.seed();
      const { name } = parseIdentity(s.identityId)!;
      const live = await passwordGrant(kc.issuer, 'test-app', name, s.password);
      const cfg = isolatedConfig(user.config);
      await withWorker(cfg, async ({ client: temporal }) => {
        const sig = signal({ provider: 'keycloak', identityId: s.identityId, identityKind: 'human', trigger: 'new-device', confidence: 0.4, riskScore: 30, assetCriticality: 'medium', privilegeLevel: 'low' });
        const { workflowId } = await submitSignal(temporal, sig, { taskQueue: cfg.taskQueue }); // no policy: the shipped default
        const st = await eventually(async () => {
          const x = await describeContainment(temporal, workflowId);
          return x.position === 'suppressed' && x;
        }, 'suppressed');
        assert.deepEqual(st.actions.filter((a) => a.action.startsWith('suppress:')).map((a) => [a.action, a.outcome]), [['suppress:force-step-up', 'done']]);
        assert.ok(!(await refused(refreshGrant(kc.issuer, 'test-app', live.refresh_token!))), 'the live session carries on');
        await assert.rejects(passwordGrant(kc.issuer, 'test-app', name, s.password), /not fully set up/, 'a new sign-in must set up OTP and a new password');
        await operator(temporal, cfg, workflowId, 'abort', 'owner confirmed the new device');
      });
    });
  });

  describe('keycloak provider specifics', () => {
    const f = keycloakFixture(kc, 'user');
    const p = f.provider as KeycloakProvider;
    after(() => f.close());
    const usersApi = async (identityId: string) => {
      const { name } = parseIdentity(identityId)!;
      const [u] = (await setup.api.call<{ id: string; requiredActions: string[] }[]>('GET', `${kc.realm}/users`, { query: { username: name, exact: true } }))!;
      return { id: u!.id, requiredActions: () => setup.api.call<{ requiredActions: string[] }>('GET', `${kc.realm}/users/${u!.id}`).then((x) => x!.requiredActions) };
    };

    test('identities and grants are written unambiguously; a missing realm, user or client is reported as missing', async () => {
      assert.deepEqual(parseIdentity('cordon-test/user:alice'), { realm: 'cordon-test', kind: 'user', name: 'alice' });
      assert.deepEqual(parseIdentity('cordon-test/client:billing-sync'), { realm: 'cordon-test', kind: 'client', name: 'billing-sync' });
      for (const bad of ['alice', 'cordon-test/alice', 'cordon-test/group:x', '/user:alice']) assert.equal(parseIdentity(bad), undefined, bad);
      const urn = { type: 'client-role' as const, clientId: 'urn:sp:100%', role: 'orders:write' };
      assert.equal(formatGrant(urn), 'client-role:urn%3Asp%3A100%25:orders:write');
      assert.deepEqual(parseGrant(formatGrant(urn)), urn);
      assert.throws(() => parseGrant('role:admin'), NotSupportedError);
      for (const id of ['cordon-test/user:nobody-here', 'cordon-test/client:no-such-client', 'no-such-realm/user:alice']) {
        assert.equal((await p.inspect(id)).exists, false, id);
        await assert.rejects(p.setEnabled(id, false), IdentityNotFoundError, id);
      }
    });

    test('identical reads at once share one request; a read after a write never takes an answer sent before the write; a read with sentSince (evidence) takes an answer of the last 2 s to a request sent since then, across writes', async () => {
      const s = await f.seed();
      const u = await usersApi(s.identityId);
      const admin = new KeycloakAdmin({ url: kc.url, realm: kc.realm, clientId: kc.admin.clientId, clientSecret: kc.admin.secret });
      await admin.warm();
      const userPath = `${kc.realm}/users/${u.id}`;
      type User = { requiredActions?: string[] };
      const sent: string[] = [];
      let answered: () => void = () => undefined;
      const send = admin.transport;
      // Answers to reads of this user reach the caller 300 ms late, so a later read could join one.
      admin.transport = async (x) => {
        const res = await send(x);
        if (x.url.pathname.endsWith(`/users/${u.id}`)) {
          sent.push(x.method);
          if (x.method === 'GET') {
            answered();
            await new Promise((r) => setTimeout(r, 300));
          }
        }
        return res;
      };
      try {
        const [a, b] = await Promise.all([admin.call<User>('GET', userPath), admin.call<User>('GET', userPath)]);
        assert.deepEqual(sent, ['GET'], 'two reads at once, one request');
        assert.deepEqual(a, b);
        assert.notEqual(a, b, 'each caller gets its own copy to change');

        sent.length = 0;
        const inFlight = new Promise<void>((r) => (answered = r));
        const before = admin.call<User>('GET', userPath);
        await inFlight; // Keycloak has answered it; the answer is still on its way
        await admin.call('PUT', userPath, { body: { requiredActions: ['CONFIGURE_TOTP'] } });
        const after = await admin.call<User>('GET', userPath);
        assert.deepEqual(sent, ['GET', 'PUT', 'GET'], 'the read after the write is a request of its own');
        assert.deepEqual(after!.requiredActions, ['CONFIGURE_TOTP']);
        assert.deepEqual((await before)!.requiredActions, [], 'the earlier read answers with what it found');

        // Answered reads: only a read with sentSince takes them, sent since then, for 2 s; it writes
        // nothing, so a write between does not matter to it (a snapshot from during the suppression).
        sent.length = 0;
        const since = performance.now();
        await admin.call<User>('GET', userPath);
        assert.deepEqual(sent, ['GET'], 'a plain read asks Keycloak again');
        assert.deepEqual((await admin.call<User>('GET', userPath, { sentSince: since }))!.requiredActions, ['CONFIGURE_TOTP']);
        assert.deepEqual(sent, ['GET'], 'one with sentSince takes the answer just received');
        await admin.call<User>('GET', userPath, { sentSince: performance.now() });
        assert.deepEqual(sent, ['GET', 'GET'], 'not one sent before that time');
        const sentBeforeWrite = performance.now();
        const reached = new Promise<void>((r) => (answered = r));
        const beforeWrite = admin.call<User>('GET', userPath);
        await reached; // Keycloak has answered it before the write below; the answer is still on its way
        await admin.call('PUT', userPath, { body: { requiredActions: [] } });
        assert.deepEqual((await admin.call<User>('GET', userPath, { sentSince: sentBeforeWrite }))!.requiredActions, ['CONFIGURE_TOTP'], 'across a write: what the read sent before it found');
        assert.deepEqual((await beforeWrite)!.requiredActions, ['CONFIGURE_TOTP']);
        assert.deepEqual(sent, ['GET', 'GET', 'GET', 'PUT']);
        assert.deepEqual((await admin.call<User>('GET', userPath))!.requiredActions, [], 'a plain read after the write asks again and sees it');
        await new Promise((r) => setTimeout(r, 2100));
        await admin.call<User>('GET', userPath, { sentSince: since });
        assert.deepEqual(sent, ['GET', 'GET', 'GET', 'PUT', 'GET', 'GET'], 'nor once 2 s have passed');
      } finally {
        admin.transport = send;
      }
    });

    test("Cordon's admin token is tied to a session: ending that session cuts the token at once, and Cordon signs in again on its next call", async () => {
      const admin = new KeycloakAdmin({ url: kc.url, realm: kc.realm, clientId: kc.admin.clientId, clientSecret: kc.admin.secret });
      const sids: (string | undefined)[] = [];
      const send = admin.transport;
      admin.transport = async (x) => {
        const res = await send(x);
        if (x.url.pathname.endsWith('/protocol/openid-connect/token')) {
          const body = JSON.parse(res.text) as { access_token?: string };
          sids.push(body.access_token && (claims(body.access_token) as { sid?: string }).sid);
        }
        return res;
      };
      try {
        const me = `${kc.realm}/users`;
        await admin.call('GET', me, { query: { max: 1 } });
        assert.equal(sids.length, 1);
        // Without a session (the realm lacks client_credentials.use_refresh_token) each admin call costs Keycloak a transient one.
        assert.ok(sids[0], 'the admin client\'s token names its session (sid)');
        await setup.api.call('DELETE', `${kc.realm}/sessions/${sids[0]}`);
        await admin.call('GET', me, { query: { max: 1 } });
        assert.equal(sids.length, 2, 'the ended session cut the token: Cordon signed in again');
        assert.notEqual(sids[1], sids[0]);
      } finally {
        admin.transport = send;
      }
    });

    test('evidence beside a suppression reuses what the suppression has just read; evidence on its own asks Keycloak afresh', async () => {
      const s = await f.seed();
      const send = p.api.transport;
      const sent: string[] = [];
      p.api.transport = (x) => {
        if (x.url.pathname.includes('/role-mappings')) sent.push(x.url.pathname);
        return send(x);
      };
      try {
        await p.inspect(s.identityId); // reads role mappings, but is no suppression
        sent.length = 0;
        await p.evidence(s.identityId, 'grants');
        assert.equal(sent.length, 3, `evidence alone reads the role mappings itself: ${sent.join(' ')}`);
        await p.suppress(s.identityId, 'block-high-risk-apis'); // removes roles: writes
        await p.suppress(s.identityId, 'block-high-risk-apis'); // its retry: reads only
        sent.length = 0;
        const grants = JSON.parse((await p.evidence(s.identityId, 'grants')).body).grants as { direct: string[] };
        assert.deepEqual(sent, [], 'right after the suppression, its answers serve');
        assert.deepEqual(grants.direct, (await p.inspect(s.identityId)).grants, 'and they hold what Keycloak holds');
        assert.ok(!grants.direct.some((g) => kc.highRiskRoles.includes(g)), 'after the removal');
      } finally {
        p.api.transport = send;
      }
    });

    test('evidence sends at most 2 requests at once; a read that may not wait goes at once, and one that needs a read evidence has queued sends that read at once', async () => {
      const [a, b] = [await f.seed(), await f.seed()];
      const send = p.api.transport;
      const out = new Set<string>(); // evidence's requests Keycloak has not yet answered
      const sent: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      p.api.transport = async (x) => {
        const background = p.api.lane.inBackground();
        const what = `${x.url.pathname}${x.url.search}`;
        sent.push(`${background ? 'evidence' : 'other'} ${what}`);
        if (background) out.add(what);
        try {
          // Evidence's event searches are held until released: they fill the lane.
          if (background && /\/(admin-)?events$/.test(x.url.pathname)) await held;
          return await send(x);
        } finally {
          out.delete(what);
        }
      };
      try {
        const searches = () => [...out].filter((w) => /\/(admin-)?events\?/.test(w)).length;
        const captureA = p.evidence(a.identityId, 'auth-events');
        await eventually(async () => searches() === 2, "a's two event searches are out");
        const captureB = p.evidence(b.identityId, 'auth-events');
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(out.size, 2, `evidence has two requests out, no more: ${[...out].join(' ')}`);
        const bName = parseIdentity(b.identityId)!.name;
        assert.ok(!sent.some((s) => s.includes(`username=${bName}`)), "b's lookup waits its turn");
        // inspect's lookup of b is the very read evidence has queued: it goes now, and the inspection ends while a's searches are held.
        const late = new Promise<never>((_, no) => setTimeout(() => no(new Error("the inspection waited behind evidence's held searches")), 5000).unref());
        assert.equal((await Promise.race([p.inspect(b.identityId), late])).exists, true);
        assert.equal(sent.filter((s) => s.includes(`username=${bName}`)).length, 1, 'one request served both');
        assert.equal(searches(), 2, "a's event searches are still held, b's wait their turn");
        release();
        const [ea, eb] = await Promise.all([captureA, captureB]);
        assert.equal(JSON.parse(ea.body).identityId, a.identityId);
        assert.equal(JSON.parse(eb.body).identityId, b.identityId);
      } finally {
        release();
        p.api.transport = send;
      }
    });

    test('force-step-up records the required actions it found; lifting removes only what it added', async () => {
      const s = await f.seed();
      const u = await usersApi(s.identityId);
      await setup.api.call('PUT', `${kc.realm}/users/${u.id}`, { body: { requiredActions: ['VERIFY_EMAIL', 'UPDATE_PASSWORD'] } });
      const r = await p.suppress(s.identityId, 'force-step-up');
      const sorted = (v: unknown) => (JSON.parse(String(v)) as string[]).sort();
      assert.deepEqual(sorted(r.receipt!.requiredActionsBefore), ['UPDATE_PASSWORD', 'VERIFY_EMAIL']);
      assert.deepEqual(sorted(r.receipt!.added), ['CONFIGURE_TOTP'], 'only what was not there yet');
      assert.deepEqual((await u.requiredActions()).sort(), ['CONFIGURE_TOTP', 'UPDATE_PASSWORD', 'VERIFY_EMAIL']);
      assert.equal((await p.liftSuppression(s.identityId, 'force-step-up', r.receipt)).changed, true);
      assert.deepEqual((await u.requiredActions()).sort(), ['UPDATE_PASSWORD', 'VERIFY_EMAIL'], 'exactly what was there before');
      const none = await p.liftSuppression(s.identityId, 'force-step-up');
      assert.equal(none.changed, false, 'no receipt: nothing is guessed');
    });

    test("lifting step-up keeps the UPDATE_PASSWORD a Cordon-issued temporary password needs", async () => {
      const s = await f.seed();
      const u = await usersApi(s.identityId);
      const r = await p.suppress(s.identityId, 'force-step-up');
      await p.setSecret(s.identityId, `Reissued-${Date.now()}-x`);
      await p.liftSuppression(s.identityId, 'force-step-up', r.receipt);
      assert.deepEqual(await u.requiredActions(), ['UPDATE_PASSWORD']);
    });

    test('block-high-risk-apis removes exactly the configured roles it finds, says what stays effective through groups, and lifts from its receipt', async () => {
      const s = await f.seed();
      const before = (await p.inspect(s.identityId)).grants;
      const r = await p.suppress(s.identityId, 'block-high-risk-apis');
      assert.deepEqual(JSON.parse(String(r.receipt!.removed)).sort(), [...kc.highRiskRoles].sort());
      assert.deepEqual((await p.inspect(s.identityId)).grants, before.filter((g) => !kc.highRiskRoles.includes(g)));
      const { name } = parseIdentity(s.identityId)!;
      assert.ok(!rolesIn((await passwordGrant(kc.issuer, 'test-app', name, s.password)).access_token).includes('payments-admin'), 'a new token lacks it');
      assert.equal((await p.liftSuppression(s.identityId, 'block-high-risk-apis', r.receipt)).changed, true);
      assert.deepEqual((await p.inspect(s.identityId)).grants, before);
      // A role held through a group is not a direct mapping: it is reported, not silently missed.
      const viaGroup = new KeycloakProvider({ ...f.config.keycloak!, highRiskRoles: ['realm-role:reports-viewer'] });
      const r2 = await viaGroup.suppress(s.identityId, 'block-high-risk-apis');
      assert.equal(r2.changed, false);
      assert.match(r2.detail, /still effective through a group or composite role: realm-role:reports-viewer/);
    });

    test('block-high-risk-apis and force-step-up note on the user what a retry needs; the retry hands back the first receipt, lifting removes the note', async () => {
      const s = await f.seed();
      const u = await usersApi(s.identityId);
      const notes = async () => (await setup.api.call<{ attributes?: Record<string, string[]> }>('GET', `${kc.realm}/users/${u.id}`))!.attributes ?? {};
      await setup.api.call('PUT', `${kc.realm}/users/${u.id}`, { body: { requiredActions: ['VERIFY_EMAIL'] } });
      const blocked = await p.suppress(s.identityId, 'block-high-risk-apis');
      const stepped = await p.suppress(s.identityId, 'force-step-up');
      // Names of roles and required actions only: nothing secret, nothing a user can see or change.
      assert.deepEqual(await notes(), { 'cordon.blocked-roles': [String(blocked.receipt!.removed)], 'cordon.step-up-before': ['["VERIFY_EMAIL"]'] });
      // The first attempt's result lost: the retry (a fresh provider, as on another worker) rebuilds it.
      const retry = new KeycloakProvider(f.config.keycloak!);
      assert.deepEqual((await retry.suppress(s.identityId, 'block-high-risk-apis')).receipt, blocked.receipt);
      assert.deepEqual((await retry.suppress(s.identityId, 'force-step-up')).receipt, stepped.receipt);
      // Without a receipt, lifting reads the note; with one, the receipt decides. Either way the note goes.
      assert.equal((await p.liftSuppression(s.identityId, 'block-high-risk-apis')).changed, true);
      assert.equal((await p.liftSuppression(s.identityId, 'force-step-up', stepped.receipt)).changed, true);
      assert.deepEqual(await notes(), {});
      assert.deepEqual((await u.requiredActions()).sort(), ['VERIFY_EMAIL']);
      assert.ok((await p.inspect(s.identityId)).grants.includes('realm-role:payments-admin'));
      assert.equal((await p.liftSuppression(s.identityId, 'block-high-risk-apis')).changed, false, 'nothing left to undo');
      // A step-up note the owner has since satisfied (the actions are done) is stale: not read back.
      await p.suppress(s.identityId, 'force-step-up');
      await setup.api.call('PUT', `${kc.realm}/users/${u.id}`, { body: { requiredActions: [] } });
      const again = await p.suppress(s.identityId, 'force-step-up');
      assert.deepEqual(JSON.parse(String(again.receipt!.requiredActionsBefore)), [], 'what was required just before this one');
      await p.liftSuppression(s.identityId, 'force-step-up', again.receipt);
      assert.deepEqual(await notes(), {});
      // A client's note is on its service-account user.
      const c = keycloakFixture(kc, 'client');
      const cs = await c.seed();
      const held = (await c.provider.inspect(cs.identityId)).grants;
      // Read by another provider (another worker): evidence beside a suppression may show the identity as it was during it.
      const observer = new KeycloakProvider(c.config.keycloak!);
      const snapshot = async () => JSON.parse((await observer.evidence(cs.identityId, 'config-snapshot')).body)['config-snapshot'] as { user: { attributes?: Record<string, string[]> } };
      const first = await c.provider.suppress(cs.identityId, 'block-high-risk-apis');
      assert.deepEqual((await snapshot()).user.attributes, { 'cordon.blocked-roles': [String(first.receipt!.removed)] });
      assert.deepEqual((await c.provider.suppress(cs.identityId, 'block-high-risk-apis')).receipt, first.receipt);
      await c.provider.liftSuppression(cs.identityId, 'block-high-risk-apis', first.receipt);
      assert.deepEqual((await c.provider.inspect(cs.identityId)).grants, held);
      assert.equal((await snapshot()).user.attributes, undefined, 'lifted: no note left');
      await c.close();
    });

    test('a realm whose user profile does not allow the note: suppression still acts and says a retry could not rebuild the receipt', async () => {
      const realm = `cordon-noprofile-${Date.now()}`;
      await setup.api.call('POST', '', { body: { realm, enabled: true, roles: { realm: [{ name: 'payments-admin' }] }, users: [{ username: 'pat', enabled: true, realmRoles: ['payments-admin'] }] } });
      try {
        // Cordon's own client lives in one realm; this one is reached from master (the setup client).
        const other = new KeycloakProvider({ url: kc.url, realm: 'master', clientId: kc.setup.clientId, clientSecret: kc.setup.secret, highRiskRoles: ['realm-role:payments-admin'] });
        const r = await other.suppress(`${realm}/user:pat`, 'block-high-risk-apis');
        assert.equal(r.changed, true);
        assert.deepEqual(r.receipt, { removed: '["realm-role:payments-admin"]' });
        assert.match(r.detail, /no retry note: the realm did not keep user attribute cordon\.blocked-roles/);
        assert.equal((await other.liftSuppression(`${realm}/user:pat`, 'block-high-risk-apis', r.receipt)).changed, true);
        assert.ok((await other.inspect(`${realm}/user:pat`)).grants.includes('realm-role:payments-admin'));
      } finally {
        await setup.api.call('DELETE', encodeURIComponent(realm));
      }
    });

    test('restore puts back a direct mapping of a role the identity still holds through a group', async () => {
      const s = await f.seed();
      const u = await usersApi(s.identityId);
      const roles = (await setup.api.call<{ id: string; name: string }[]>('GET', `${kc.realm}/users/${u.id}/role-mappings/realm/composite`))!;
      await setup.api.call('POST', `${kc.realm}/users/${u.id}/role-mappings/realm`, { body: roles.filter((r) => r.name === 'reports-viewer') });
      const before = (await p.inspect(s.identityId)).grants;
      assert.ok(before.includes('realm-role:reports-viewer') && before.includes('group:/finance'));
      await p.restrict(s.identityId, ['group:/finance']);
      assert.deepEqual((await p.inspect(s.identityId)).grants, ['group:/finance']);
      await p.restore(s.identityId, before);
      assert.deepEqual((await p.inspect(s.identityId)).grants, before);
    });

    test('revoke-sessions makes offline tokens stale but leaves their sessions; revoke-tokens removes them and the consent, also for an attacker holding only an offline token', async () => {
      const s = await f.seed();
      const { name } = parseIdentity(s.identityId)!;
      await passwordGrant(kc.issuer, 'test-app', name, s.password);
      const offline = await passwordGrant(kc.issuer, 'test-app', name, s.password, 'openid offline_access');
      const offlineSessions = async () => (JSON.parse((await p.evidence(s.identityId, 'sessions')).body).sessions as { offline: unknown[] }).offline.length;
      const ended = await p.suppress(s.identityId, 'revoke-sessions');
      assert.equal(ended.changed, true);
      assert.ok(ended.ended!.some((d) => d.name === 'test-app' && d.address === '127.0.0.1'), 'the ended sessions are named for evidence');
      await assert.rejects(refreshGrant(kc.issuer, 'test-app', offline.refresh_token!), /Stale token/, "the logout's not-before covers the offline token");
      assert.equal(await offlineSessions(), 1, 'but its session is still there');
      const revoked = await p.suppress(s.identityId, 'revoke-tokens');
      assert.match(revoked.detail, /revoked offline tokens and consents for test-app/);
      assert.equal(await offlineSessions(), 0);
      assert.equal((await p.suppress(s.identityId, 'revoke-tokens')).changed, false);

      const only = await f.seed();
      const stolen = await passwordGrant(kc.issuer, 'test-app', parseIdentity(only.identityId)!.name, only.password, 'openid offline_access');
      assert.equal((await p.suppress(only.identityId, 'revoke-tokens')).changed, true);
      assert.ok(await refused(refreshGrant(kc.issuer, 'test-app', stolen.refresh_token!)), 'an offline token alone is revoked too');
    });

    test('a client refreshing in a loop does not outlive the logout (Keycloak can lose a logout to a refresh in flight)', async () => {
      // Without the second pass, about one round in four kept refreshing for good (measured on 26.7.3).
      for (let round = 0; round < 3; round++) {
        const s = await f.seed();
        const first = await passwordGrant(kc.issuer, 'test-app', parseIdentity(s.identityId)!.name, s.password);
        let [done, after, cut] = [false, 0, Infinity];
        const attack = async () => {
          let t = first;
          while (!done) {
            try {
              t = await refreshGrant(kc.issuer, 'test-app', t.refresh_token!);
              if (performance.now() > cut) after++;
            } catch {
              // Refused: keep trying (a session brought back would answer again), but slowly: every
              // refusal is an event row, and a flood of them slows the whole server.
              await new Promise((r) => setTimeout(r, 100));
            }
          }
        };
        const attackers = [attack(), attack(), attack(), attack()];
        await new Promise((r) => setTimeout(r, 150));
        await Promise.all([p.suppress(s.identityId, 'revoke-sessions'), p.suppress(s.identityId, 'revoke-tokens')]);
        cut = performance.now();
        await new Promise((r) => setTimeout(r, 1500)); // the attack goes on
        done = true;
        await Promise.all(attackers);
        assert.equal(after, 0, `round ${round}: refreshes succeeded after suppression returned`);
      }
    });

    test('a scoped signal ends the named session only', async () => {
      const s = await f.seed();
      const { name } = parseIdentity(s.identityId)!;
      const [a, b] = [await passwordGrant(kc.issuer, 'test-app', name, s.password), await passwordGrant(kc.issuer, 'test-app', name, s.password)];
      const sid = String(claims(a.access_token).sid);
      assert.equal((await p.suppress(s.identityId, 'revoke-sessions', { sessionId: sid })).changed, true);
      assert.ok(await refused(refreshGrant(kc.issuer, 'test-app', a.refresh_token!)), 'the named session ended');
      assert.ok(!(await refused(refreshGrant(kc.issuer, 'test-app', b.refresh_token!))), 'the other one carries on');
    });

    test('dependents: a user is the clients of its live sessions; a client whose session suppression ended is left out, also when it signs in again', async () => {
      const s = await f.seed();
      const { name } = parseIdentity(s.identityId)!;
      await passwordGrant(kc.issuer, 'attacker-tool', name, s.password);
      const r = await p.suppress(s.identityId, 'revoke-sessions');
      assert.deepEqual(r.ended!.map((d) => [d.name, d.address]), [['attacker-tool', '127.0.0.1']]);
      assert.deepEqual(await p.dependents(s.identityId, r.ended), []);
      // The same rule as every provider's (dependentsExcept): the client and address, whenever seen.
      await passwordGrant(kc.issuer, 'attacker-tool', name, s.password);
      await passwordGrant(kc.issuer, 'billing-app', name, s.password);
      const pairs = async (exclude?: typeof r.ended) => (await p.dependents(s.identityId, exclude)).map((d) => [d.name, d.address]).sort();
      assert.deepEqual(await pairs(), [['attacker-tool', '127.0.0.1'], ['billing-app', '127.0.0.1']]);
      assert.deepEqual(await pairs(r.ended), [['billing-app', '127.0.0.1']], 'the attacker is not a dependent, also after coming back');
      const c = keycloakFixture(kc, 'client');
      const cs = await c.seed();
      await clientCredentialsGrant(kc.issuer, parseIdentity(cs.identityId)!.name, cs.password);
      const deps = await c.provider.dependents(cs.identityId);
      assert.deepEqual(deps.map((d) => [d.name, d.address]), [[parseIdentity(cs.identityId)!.name, '127.0.0.1']], 'who took tokens with the client secret, and from where');
      await c.close();
    });

    test("refuses Cordon's own admin client, its service account and master-realm administrators", async () => {
      for (const id of [`${kc.realm}/client:${kc.admin.clientId}`, `${kc.realm}/user:service-account-${kc.admin.clientId}`]) {
        await assert.rejects(p.suppress(id, 'revoke-sessions'), (err) => err instanceof NotSupportedError && /refusing/.test(err.message), id);
      }
      // A Cordon whose admin client lives in master (here the full-power setup client) still refuses master's admins.
      const fromMaster = new KeycloakProvider({ url: kc.url, realm: 'master', clientId: kc.setup.clientId, clientSecret: kc.setup.secret });
      await assert.rejects(fromMaster.setEnabled('master/user:admin', false), /administrator of the master realm/);
      await assert.rejects(fromMaster.setEnabled(`master/client:${kc.setup.clientId}`, false), /own admin client/);
      assert.equal((await fromMaster.inspect('master/user:admin')).enabled, true);
    });

    test("least privilege: Cordon's admin client cannot escalate, read realm keys or reach another realm", async () => {
      const admin = new KeycloakAdmin({ url: kc.url, realm: kc.realm, clientId: kc.admin.clientId, clientSecret: kc.admin.secret });
      const s = await f.seed();
      const u = await usersApi(s.identityId);
      const [rm] = (await admin.call<{ id: string }[]>('GET', `${kc.realm}/clients`, { query: { clientId: 'realm-management' } }))!;
      const realmAdmin = await admin.call<{ id: string; name: string }>('GET', `${kc.realm}/clients/${rm!.id}/roles/realm-admin`);
      await assert.rejects(admin.call('POST', `${kc.realm}/users/${u.id}/role-mappings/clients/${rm!.id}`, { body: [realmAdmin] }), NotSupportedError, 'cannot grant realm-admin');
      await assert.rejects(admin.call('GET', `${kc.realm}/keys`), NotSupportedError, 'cannot read the realm keys');
      await assert.rejects(admin.call('PUT', `${kc.realm}`, { body: { displayName: 'changed by Cordon' } }), NotSupportedError, 'cannot change the realm');
      await assert.rejects(p.setEnabled('master/user:admin', false), NotSupportedError, 'cannot touch the master realm');
      const wrong = new KeycloakProvider({ url: kc.url, realm: kc.realm, clientId: kc.admin.clientId, clientSecret: 'not-the-secret' });
      await assert.rejects(wrong.inspect(s.identityId), (err) => err instanceof NotSupportedError && !err.message.includes('not-the-secret'));
    });

    test("a client's two revocations in the same second set its not-before once; a new token a second later gets it set again", async () => {
      const c = keycloakFixture(kc, 'client');
      const s = await c.seed();
      const name = parseIdentity(s.identityId)!.name;
      const stolen = await clientCredentialsGrant(kc.issuer, name, s.password);
      const puts: number[] = [];
      const reads: string[] = [];
      const searches: URLSearchParams[] = [];
      const { api } = c.provider as KeycloakProvider;
      const send = api.transport;
      api.transport = (x) => {
        if (x.method === 'PUT' && /\/clients\/[0-9a-f-]{36}$/.test(x.url.pathname)) puts.push(JSON.parse(x.body!).notBefore);
        if (x.method === 'GET') reads.push(x.url.pathname);
        if (x.method === 'GET' && x.url.pathname.endsWith('/events')) searches.push(x.url.searchParams);
        return send(x);
      };
      try {
        while (Date.now() % 1000 > 300) await new Promise((r) => setTimeout(r, 20)); // both well inside one second
        await Promise.all([c.provider.suppress(s.identityId, 'revoke-sessions'), c.provider.suppress(s.identityId, 'revoke-tokens')]);
        assert.equal(puts.length, 1, `one write of the not-before: ${puts.join(', ')}`);
        const once = (what: RegExp) => assert.equal(reads.filter((r) => what.test(r)).length, 1, `one request for ${what}: ${reads.join(' ')}`);
        once(/\/events$/);
        once(/\/users\/[0-9a-f-]{36}\/sessions$/);
        // Keycloak indexes events by user and type and by time, never by client: a search by client reads every event of the realm.
        assert.ok(searches.every((q) => q.get('user') && !q.has('client') && !q.has('type')), `grants read from the service account's newest events: ${searches.map(String).join(' ')}`);
        // Evidence beside the cut takes that search's answer: one request, not two.
        const login = JSON.parse((await c.provider.evidence(s.identityId, 'auth-events')).body)['auth-events'].login as { type: string }[];
        assert.equal(searches.filter((q) => q.has('user')).length, 1, `one search by the service account for the cut and its evidence: ${searches.map(String).join(' ')}`);
        assert.ok(login.some((e) => e.type === 'CLIENT_LOGIN'), 'the grant is in the evidence');
        assert.equal((await introspect(kc.issuer, kc.introspector, stolen.access_token)).active, false, 'the stolen token is cut');
        await new Promise((r) => setTimeout(r, 1100));
        const again = await clientCredentialsGrant(kc.issuer, name, s.password); // the leaked secret still works until rotation
        await c.provider.suppress(s.identityId, 'revoke-tokens');
        assert.equal(puts.length, 2, 'a later revocation with a live grant writes again');
        assert.ok(puts[1]! > puts[0]!);
        assert.equal((await introspect(kc.issuer, kc.introspector, again.access_token)).active, false, 'and cuts the new token');
      } finally {
        api.transport = send;
        await c.close();
      }
    });

    test("a client's cut does not wait on the event search: its token is dead while the search is still out, and the search still says what the cut ended", async () => {
      const c = keycloakFixture(kc, 'client');
      const s = await c.seed();
      const name = parseIdentity(s.identityId)!.name;
      const stolen = await clientCredentialsGrant(kc.issuer, name, s.password);
      const { api } = c.provider as KeycloakProvider;
      const send = api.transport;
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let searching = false;
      api.transport = async (x) => {
        if (x.method === 'GET' && x.url.pathname.endsWith('/events') && x.url.searchParams.has('user')) {
          searching = true;
          await held;
        }
        return send(x);
      };
      try {
        const cut = c.provider.suppress(s.identityId, 'revoke-tokens');
        await eventually(async () => searching && !(await introspect(kc.issuer, kc.introspector, stolen.access_token)).active, 'the stolen token is dead while the event search is held');
        release();
        const r = await cut;
        assert.equal(r.changed, true);
        assert.ok(r.ended?.some((d) => d.name === name), `the grant the search found is what the cut ended: ${JSON.stringify(r.ended)}`);
      } finally {
        release();
        api.transport = send;
        await c.close();
      }
    });

    test("a busy client's grants: when its newest events all fall inside the window, the window is searched by type as well", async () => {
      const c = keycloakFixture(kc, 'client');
      const s = await c.seed();
      const name = parseIdentity(s.identityId)!.name;
      await clientCredentialsGrant(kc.issuer, name, s.password);
      const { api } = c.provider as KeycloakProvider;
      const send = api.transport;
      const searches: URLSearchParams[] = [];
      api.transport = async (x) => {
        if (x.method !== 'GET' || !x.url.pathname.endsWith('/events')) return send(x);
        searches.push(x.url.searchParams);
        if (x.url.searchParams.has('type')) return send(x);
        // Its newest events (a full answer): other kinds, all newer than the grant.
        const now = Date.now();
        return { status: 200, text: JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ time: now - i, type: 'INTROSPECT_TOKEN', clientId: name }))) };
      };
      try {
        const r = await c.provider.suppress(s.identityId, 'revoke-tokens');
        assert.deepEqual(searches.map((q) => q.get('type')), [null, 'CLIENT_LOGIN'], `the newest events, then the window by type: ${searches.map(String).join(' ')}`);
        assert.ok(r.ended?.some((d) => d.name === name), `the grant the typed search found is what the cut ended: ${JSON.stringify(r.ended)}`);
      } finally {
        api.transport = send;
        await c.close();
      }
    });

    test('evidence holds metadata, never a password, client secret or token', async () => {
      const c = keycloakFixture(kc, 'client');
      const [us, cs] = [await f.seed(), await c.seed()];
      // Admin events and a labelled credential first, then sign-ins with the new credentials.
      await p.setSecret(us.identityId, 'Evidence-test-1-x');
      await c.provider.setSecret(cs.identityId, 'Evidence-test-2-x');
      const token = await keycloakSignIn(kc, parseIdentity(us.identityId)!.name, 'Evidence-test-1-x');
      await clientCredentialsGrant(kc.issuer, parseIdentity(cs.identityId)!.name, 'Evidence-test-2-x');
      const bodies: Record<string, Record<string, unknown>> = {};
      for (const [who, prov, id] of [['user', p, us.identityId], ['client', c.provider, cs.identityId]] as const) {
        for (const kind of EVIDENCE_KINDS) {
          const e = await prov.evidence(id, kind);
          assert.equal(findSecret(e.body, [us.password, cs.password, 'Evidence-test-1-x', 'Evidence-test-2-x', token.access_token, token.refresh_token!, kc.admin.secret]), undefined, `a secret in ${who} ${kind}`);
          bodies[`${who}:${kind}`] = JSON.parse(e.body)[kind];
        }
      }
      const userTokens = bodies['user:token-metadata'] as { credentials: Record<string, unknown>[] };
      assert.equal(userTokens.credentials[0]!.type, 'password');
      for (const k of Object.keys(userTokens.credentials[0]!)) assert.ok(['created', 'id', 'type', 'userLabel'].includes(k), `${k}: types, dates, labels only, no credential data`);
      // (Each with a message: without one, a failing assert.ok makes Node parse this file for minutes.)
      assert.ok((bodies['user:auth-events'] as { login: { type: string }[] }).login.some((e) => e.type === 'LOGIN'), "the user's sign-in is in its login events");
      assert.ok((bodies['user:auth-events'] as { admin: { resourcePath: string }[] }).admin.some((e) => e.resourcePath.endsWith('reset-password')), "the user's password reset is in its admin events");
      assert.ok((bodies['client:auth-events'] as { login: { type: string }[] }).login.some((e) => e.type === 'CLIENT_LOGIN'), "the client's grant is in its login events");
      // Bounded by the user's creation, the search still holds the creation itself (and, for a client, what was done to its service account).
      const userId = ((bodies['user:config-snapshot'] as { user: { id: string } }).user).id;
      assert.ok((bodies['user:auth-events'] as { admin: { resourcePath: string; operation: string }[] }).admin.some((e) => e.resourcePath === `users/${userId}` && e.operation === 'CREATE'), 'the user\'s creation is in its admin events');
      assert.ok((bodies['client:auth-events'] as { admin: { resourcePath: string }[] }).admin.some((e) => e.resourcePath.startsWith('users/')), "what was done to the client's service account is in its admin events");
      assert.ok((bodies['user:sessions'] as { online: { clients: string[] }[] }).online[0]!.clients.includes('test-app'));
      assert.equal((bodies['client:config-snapshot'] as { client: Record<string, unknown> }).client.secret, undefined);
      assert.deepEqual((bodies['client:grants'] as { direct: string[] }).direct, (await c.provider.inspect(cs.identityId)).grants);
      await c.close();
    });

    test("a client's config snapshot is the client its lookup found: what a read by id gives, secrets removed, without that read", async () => {
      const c = keycloakFixture(kc, 'client');
      const setup = keycloakSetup(kc);
      const r = encodeURIComponent(kc.realm);
      const s = await c.seed();
      const name = parseIdentity(s.identityId)!.name;
      const uuid = (await setup.api.call<{ id: string }[]>('GET', `${r}/clients`, { query: { clientId: name, search: false } }))![0]!.id;
      const reads: string[] = [];
      const { api } = c.provider as KeycloakProvider;
      const send = api.transport;
      api.transport = (x) => {
        if (x.method === 'GET') reads.push(x.url.pathname);
        return send(x);
      };
      try {
        const snapshot = JSON.parse((await c.provider.evidence(s.identityId, 'config-snapshot')).body)['config-snapshot'].client as Record<string, unknown>;
        const byId = (await setup.api.call<Record<string, unknown>>('GET', `${r}/clients/${uuid}`))!;
        assert.ok(typeof byId.secret === 'string' && Object.keys(byId).length > 10, 'a read by id is the full representation, secret included');
        assert.deepEqual(snapshot, stripSecrets(byId), 'the snapshot is the client as a read by id gives it, secrets removed');
        assert.equal(findSecret(JSON.stringify(snapshot), [s.password]), undefined, 'no secret in the snapshot');
        assert.ok(!reads.some((p) => p.endsWith(`/clients/${uuid}`)), `no read of the client by id: ${reads.join(' ')}`);
      } finally {
        api.transport = send;
        await c.close();
      }
    });

    test("a client's admin and login events are searched from its service account's creation, and again unbounded when that misses the client's own", async () => {
      const c = keycloakFixture(kc, 'client');
      const setup = keycloakSetup(kc);
      const r = encodeURIComponent(kc.realm);
      const uuidOf = async (clientId: string) => (await setup.api.call<{ id: string }[]>('GET', `${r}/clients`, { query: { clientId, search: false } }))![0]!.id;
      const made = await c.seed(); // service accounts on from the start
      // Service accounts turned on later: the service account is younger than the client.
      const late = `svc-late-${Date.now().toString(36)}`;
      await setup.api.call('POST', `${r}/clients`, { body: { clientId: late, enabled: true, publicClient: false, serviceAccountsEnabled: false, standardFlowEnabled: false } });
      const lateUuid = await uuidOf(late);
      // Before its service account: a grant refused, recorded as a login event through the client alone.
      const { value: lateSecret } = (await setup.api.call<{ value: string }>('GET', `${r}/clients/${lateUuid}/client-secret`))!;
      const refused = await fetch(`${kc.issuer}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials', client_id: late, client_secret: lateSecret }) });
      assert.equal(refused.status, 401, await refused.text());
      await new Promise((res) => setTimeout(res, 1500)); // past the clock margin
      await setup.api.call('PUT', `${r}/clients/${lateUuid}`, { body: { serviceAccountsEnabled: true } });
      const searches: string[] = [];
      const logins: URLSearchParams[] = [];
      const { api } = c.provider as KeycloakProvider;
      const send = api.transport;
      api.transport = (x) => {
        if (x.url.pathname.endsWith('/admin-events') && x.url.searchParams.get('resourcePath')?.startsWith('clients/')) searches.push(x.url.search);
        if (x.url.pathname.endsWith('/events') && x.url.searchParams.has('client')) logins.push(x.url.searchParams);
        return send(x);
      };
      try {
        for (const [id, uuid, expected] of [[made.identityId, await uuidOf(parseIdentity(made.identityId)!.name), 1], [`${kc.realm}/client:${late}`, lateUuid, 2]] as const) {
          searches.length = 0;
          logins.length = 0;
          const { admin } = JSON.parse((await c.provider.evidence(id, 'auth-events')).body)['auth-events'] as { admin: { resourcePath: string; operation: string }[] };
          assert.ok(admin.some((e) => e.resourcePath === `clients/${uuid}` && e.operation === 'CREATE'), `${id}: the client's creation is in its admin events`);
          assert.equal(searches.length, expected, `${id}: ${searches.join(' ')}`);
          // Login events by client: one search from the service account's creation, and the unbounded one only when the creation is not in it.
          assert.deepEqual(logins.map((q) => q.has('dateFrom')), expected === 1 ? [true] : [true, false], `${id}: ${logins.join(' ')}`);
        }
        const { login } = JSON.parse((await c.provider.evidence(`${kc.realm}/client:${late}`, 'auth-events')).body)['auth-events'] as { login: { type: string; clientId: string }[] };
        assert.ok(login.some((e) => e.type === 'CLIENT_LOGIN_ERROR' && e.clientId === late), `the grant refused before the service account is in the login events: ${JSON.stringify(login)}`);
      } finally {
        api.transport = send;
        await setup.api.call('DELETE', `${r}/clients/${lateUuid}`, { allowMissing: true });
        await c.close();
      }
    });

    test('configuration: the admin client is required with the URL, and its secret is never printed', () => {
      const secret = 'Sup3r-secret-value';
      assert.throws(() => loadConfig({ CORDON_KEYCLOAK_URL: 'http://127.0.0.1:8080' }), /CORDON_KEYCLOAK_CLIENT_ID and CORDON_KEYCLOAK_CLIENT_SECRET/);
      assert.throws(() => loadConfig({ CORDON_KEYCLOAK_URL: 'ftp://x', CORDON_KEYCLOAK_CLIENT_ID: 'c', CORDON_KEYCLOAK_CLIENT_SECRET: secret }), (err: Error) => /http\(s\)/.test(err.message) && !err.message.includes(secret));
      assert.throws(() => loadConfig({ CORDON_KEYCLOAK_URL: 'http://x', CORDON_KEYCLOAK_CLIENT_ID: 'c', CORDON_KEYCLOAK_CLIENT_SECRET: secret, CORDON_KEYCLOAK_HIGH_RISK_ROLES: 'admin' }), /HIGH_RISK_ROLES/);
      const cfg = loadConfig({ CORDON_KEYCLOAK_URL: 'http://127.0.0.1:8080/', CORDON_KEYCLOAK_REALM: 'corp', CORDON_KEYCLOAK_CLIENT_ID: 'cordon', CORDON_KEYCLOAK_CLIENT_SECRET: secret, CORDON_KEYCLOAK_HIGH_RISK_ROLES: 'realm-role:admin, client-role:billing:refunds' });
      assert.deepEqual(cfg.keycloak, { url: 'http://127.0.0.1:8080', realm: 'corp', clientId: 'cordon', clientSecret: secret, highRiskRoles: ['realm-role:admin', 'client-role:billing:refunds'] });
      assert.throws(() => loadConfig({ CORDON_KEYCLOAK_URL: 'http://x', CORDON_KEYCLOAK_CLIENT_ID: 'c', CORDON_KEYCLOAK_CLIENT_SECRET: secret, CORDON_KEYCLOAK_EVIDENCE_IN_FLIGHT: '0' }), /CORDON_KEYCLOAK_EVIDENCE_IN_FLIGHT is at least 1/);
      assert.equal(loadConfig({ CORDON_KEYCLOAK_URL: 'http://x', CORDON_KEYCLOAK_CLIENT_ID: 'c', CORDON_KEYCLOAK_CLIENT_SECRET: secret, CORDON_KEYCLOAK_EVIDENCE_IN_FLIGHT: '6' }).keycloak!.evidenceInFlight, 6);
      const printed = describeProviders(cfg).join(' ');
      assert.match(printed, /keycloak \(http:\/\/127\.0\.0\.1:8080\/ realm=corp client=cordon secret=\*\*\*\)/);
      assert.ok(!printed.includes(secret));
      assert.equal(loadConfig({}).keycloak, undefined, 'no Keycloak unless configured');
    });

    test('the realm serves operator sign-in (issue #9): roles in realm_access, cordon in aud, the intake client by client credentials', async () => {
      for (const [who, o] of Object.entries(TEST_OPERATORS)) {
        const c = claims(await kc.operatorToken(who as keyof typeof TEST_OPERATORS));
        assert.equal(c.iss, kc.issuer);
        assert.ok(([] as string[]).concat(c.aud as string).includes('cordon'), `${who}: aud holds cordon`);
        assert.deepEqual(c.realm_access!.roles.filter((r) => r.startsWith('cordon-')), [...o.roles], who);
      }
      const intake = claims((await clientCredentialsGrant(kc.issuer, kc.intake.clientId, kc.intake.secret)).access_token);
      assert.ok(([] as string[]).concat(intake.aud as string).includes('cordon'));
      assert.ok(intake.realm_access!.roles.includes('cordon-intake'));
      await assert.rejects(passwordGrant(kc.issuer, 'cordon-cli', 'ann', 'wrong'), OidcError);
    });
  });
}
