// A real transmitter: Keycloak 26.7's experimental SSF feature pushing to Cordon's receiver. A
// private Keycloak with the feature on (its own copy of the distribution) gets a realm with the
// transmitter enabled, a user, and a receiver client whose stream pushes to Cordon on loopback.
// A user's logout reaches Cordon as a verified SET and is recorded only (the mapping acts on
// nothing a user does to themselves); an admin's password reset starts the mapped containment.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { LabProvider } from '../activities/providers/lab';
import { clientCredentialsGrant, passwordGrant, tokenRequest } from '../scripts/identity-connections';
import { keycloakMissing, startKeycloak, type LocalKeycloak } from '../scripts/local-keycloak';
import { containmentWorkflowId } from '../workflows/ids';
import { CAEP, PUSH_DELIVERY } from '../workflows/ssf-events';
import type { ContainmentState } from '../workflows/schemas';
import { closeTestEnv, testEnv } from './harness';
import { eventually, labIdentity } from './fixtures';
import { withApi } from './http-harness';
import { inCI } from './services';

after(closeTestEnv);

const missing = keycloakMissing();
if (missing.length) {
  if (inCI()) throw new Error(`ssf-keycloak: Keycloak cannot run in CI: ${missing.join(', ')}`);
  console.warn(`ssf-keycloak: SKIPPING: ${missing.join(', ')} missing on this machine`);
}

let kc: LocalKeycloak | undefined;
before(async () => {
  if (!missing.length) kc = await startKeycloak({ sharedSignals: true });
}, { timeout: 300_000 });
after(() => kc?.stop());

/** The Keycloak admin API as the master realm's setup client. */
async function adminApi(k: LocalKeycloak) {
  const token = (await clientCredentialsGrant(`${k.url}/realms/master`, k.setup.clientId, k.setup.secret)).access_token;
  return async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${k.url}/admin/realms${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return text ? (JSON.parse(text) as unknown) : undefined;
  };
}

describe('Keycloak as a Shared Signals transmitter', { skip: missing.length > 0 && 'Keycloak cannot run on this machine' }, () => {
  test('a logout reaches Cordon as a verified SET (recorded only); an admin password reset starts the mapped containment', async () => {
    const k = kc!;
    const realm = `ssf-${randomBytes(3).toString('hex')}`;
    const issuer = `${k.url}/realms/${realm}`;
    const audience = 'https://cordon.test/ssf';
    const email = `alice-${randomBytes(3).toString('hex')}@example.com`;
    const ssf = {
      transmitters: [
        {
          name: 'keycloak',
          issuer,
          jwksUrl: `${issuer}/protocol/openid-connect/certs`,
          audience,
          mapping: {
            version: 'keycloak-test-1',
            subjects: { email: { provider: 'lab', identityKind: 'human' }, complex: { identity: ['user'] } },
            events: {
              // The shipped rule: only the IdP's own risk engine revoking a session is acted on.
              [`${CAEP}session-revoked`]: { trigger: 'custom:kc-session-revoked', confidence: 0.7, riskScore: 60, cases: [{ when: { initiating_entity: ['policy', 'system'] } }] },
              [`${CAEP}credential-change`]: { trigger: 'custom:kc-credential-reset', confidence: 0.85, riskScore: 70 },
            },
          },
        },
      ],
    };
    await withApi({ ssf }, async (api) => {
      await new LabProvider(api.config.labFile).dir.seed({ [email]: labIdentity({ kind: 'human' }) });
      const admin = await adminApi(k);
      await admin('POST', '', { realm, enabled: true, attributes: { 'ssf.transmitterEnabled': 'true' } });
      await admin('POST', `/${realm}/users`, { username: 'alice', email, emailVerified: true, enabled: true, firstName: 'Alice', lastName: 'Test', credentials: [{ type: 'password', value: 'alice-Test-pw-1', temporary: false }] });
      await admin('POST', `/${realm}/clients`, { clientId: 'app', publicClient: true, directAccessGrantsEnabled: true, standardFlowEnabled: false });
      const receiverSecret = randomBytes(18).toString('base64url');
      await admin('POST', `/${realm}/clients`, {
        clientId: 'cordon-receiver',
        publicClient: false,
        secret: receiverSecret,
        serviceAccountsEnabled: true,
        standardFlowEnabled: false,
        optionalClientScopes: ['ssf.read', 'ssf.manage'],
        attributes: { 'ssf.enabled': 'true', 'ssf.validPushUrls': `${api.base}/ssf/events`, 'ssf.defaultSubjects': 'ALL', 'ssf.streamAudience': audience, 'ssf.userSubjectFormat': 'email' },
      });
      // The receiver registers its stream through Keycloak's SSF management API.
      const meta = (await (await fetch(`${issuer}/.well-known/ssf-configuration`)).json()) as { issuer: string; jwks_uri: string; configuration_endpoint: string; delivery_methods_supported: string[] };
      assert.equal(meta.issuer, issuer);
      assert.ok(meta.delivery_methods_supported.includes(PUSH_DELIVERY));
      const manage = (await tokenRequest(issuer, { grant_type: 'client_credentials', client_id: 'cordon-receiver', client_secret: receiverSecret, scope: 'ssf.read ssf.manage' })).access_token;
      const created = await fetch(meta.configuration_endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${manage}`, 'content-type': 'application/json' },
        body: JSON.stringify({ delivery: { method: PUSH_DELIVERY, endpoint_url: `${api.base}/ssf/events` }, events_requested: [`${CAEP}session-revoked`, `${CAEP}credential-change`], description: 'Cordon' }),
      });
      assert.equal(created.status, 201, await created.clone().text());
      const sets = () => api.log.filter((l) => l.route === '/ssf/events');

      // 1. Alice signs in and logs out: Keycloak pushes session-revoked, Cordon verifies and records it.
      const session = await passwordGrant(issuer, 'app', 'alice', 'alice-Test-pw-1');
      const out = await fetch(`${issuer}/protocol/openid-connect/logout`, { method: 'POST', body: new URLSearchParams({ client_id: 'app', refresh_token: session.refresh_token! }) });
      assert.equal(out.status, 204);
      const logout = await eventually(async () => sets().find((l) => l.event === `${CAEP}session-revoked`), 'the session-revoked SET at Cordon', 60_000);
      assert.deepEqual([logout.status, logout.transmitter, logout.outcome], [202, 'keycloak', 'recorded']);
      const { client } = await testEnv();
      const id = containmentWorkflowId({ provider: 'lab', identityId: email });
      await assert.rejects(client.workflow.getHandle(id).describe(), /not found/i);

      // 2. An admin resets her password: credential-change, mapped by this transmitter's mapping.
      const [user] = (await admin('GET', `/${realm}/users?username=alice&exact=true`)) as { id: string }[];
      await admin('PUT', `/${realm}/users/${user!.id}/reset-password`, { type: 'password', value: 'alice-Test-pw-2', temporary: false });
      const reset = await eventually(async () => sets().find((l) => l.event === `${CAEP}credential-change`), 'the credential-change SET at Cordon', 60_000);
      assert.deepEqual([reset.status, reset.outcome], [202, 'containment']);
      const state = await eventually(async () => {
        const st = await client.workflow.getHandle(id).query<ContainmentState>('state');
        return st.position === 'suppressed' && st;
      }, 'the mapped containment suppressed');
      assert.equal(state.signals[0]!.trigger, 'custom:kc-credential-reset');
      assert.match(state.signals[0]!.signalId, /^ssf-[0-9a-f]{40}$/);
      assert.deepEqual(sets().filter((l) => l.status !== 202), [], 'every SET Keycloak pushed verified');
    });
  });
});
