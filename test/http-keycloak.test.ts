// The HTTP API with the run's real Keycloak as the organisation's issuer: a machine client's
// client-credentials token submits signals, operators' tokens steer containments (verified at the
// edge and again by the worker), and each role is held to what it may do.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { LabProvider } from '../activities/providers/lab';
import { clientCredentialsGrant } from '../scripts/identity-connections';
import type { ContainmentState } from '../workflows/schemas';
import { closeTestEnv, testToken } from './harness';
import { approvalLadder, eventually, labIdentity, policyWith, signal } from './fixtures';
import { withApi } from './http-harness';
import { inCI, testKeycloak } from './services';

after(closeTestEnv);

const kc = testKeycloak();
if (!kc) {
  if (inCI()) throw new Error('http-keycloak: no Keycloak in CI (test/services.ts starts it)');
  console.warn('http-keycloak: SKIPPING: Keycloak not available on this machine (see test/services.ts)');
}
const enc = encodeURIComponent;

describe('HTTP API with a real Keycloak', { skip: !kc && 'no Keycloak on this machine' }, () => {
  test('a client-credentials intake token submits; operators’ tokens steer; every other role is refused', async () => {
    await withApi({ policy: policyWith(approvalLadder()), oidcIssuer: kc!.issuer }, async (api) => {
      const s = signal();
      await new LabProvider(api.config.labFile).dir.seed({ [s.identityId]: labIdentity() });
      const intake = (await clientCredentialsGrant(kc!.issuer, kc!.intake.clientId, kc!.intake.secret)).access_token;
      const [ann, cleo, eve] = await Promise.all([kc!.operatorToken('ann'), kc!.operatorToken('cleo'), kc!.operatorToken('eve')]);
      // Operators and other issuers' tokens may not submit; the intake client may.
      assert.equal((await api.call('POST', '/v1/signals', { token: cleo, json: s })).status, 403);
      assert.equal((await api.call('POST', '/v1/signals', { token: await testToken('dev-lead', ['lead']), json: s })).status, 401, 'a token of another issuer');
      const accepted = await api.call('POST', '/v1/signals', { token: intake, json: s });
      assert.equal(accepted.status, 202, accepted.text);
      const id = accepted.body.containmentId as string;
      const path = `/v1/containments/${enc(id)}`;
      // Reads need a responder or lead: not the intake client, not a user without a Cordon role.
      assert.equal((await api.call('GET', path, { token: intake })).status, 403);
      assert.equal((await api.call('GET', path, { token: eve })).status, 403);
      await eventually(async () => ((await api.call('GET', path, { token: ann })).body as ContainmentState).waiting?.for === 'approval', 'the restrict approval');
      // A responder may advance but not roll back; the worker verifies the sealed Keycloak token again.
      assert.equal((await api.call('POST', `${path}/commands`, { token: ann, json: { type: 'rollback', reason: 'not a responder’s call' } })).status, 403);
      const ok = await api.call('POST', `${path}/commands`, { token: ann, json: { type: 'advance', reason: 'confirmed with the owner' } });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.body.by, 'ann');
      const state = (await api.call('GET', path, { token: cleo })).body as ContainmentState;
      const advance = state.actions.find((a) => a.action === 'command:advance' && a.outcome === 'done');
      assert.equal(advance?.principal?.iss, kc!.issuer);
      assert.equal(advance?.principal?.username, 'ann');
      assert.ok(api.log.some((l) => l.route === '/v1/signals' && l.status === 202 && l.caller === 'service-account-cordon-intake'));
    });
  });
});
