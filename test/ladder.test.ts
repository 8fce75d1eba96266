// The containment ladder on the real dev server against the lab provider.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { LabDirectory, LabProvider } from '../activities/providers/lab';
import { LocalVault } from '../activities/secret-sink';
import { describeContainment, submitSignal } from '../client/containments';
import { closeTestEnv, isolatedConfig, withWorker } from './harness';
import { eventually, labIdentity, policyWith, signal, timedLadder } from './fixtures';

after(closeTestEnv);

describe('full ladder', () => {
  test('completes automatically under a timed policy and leaves the lab identity contained', async () => {
    const config = isolatedConfig();
    const lab = new LabProvider(config.labFile);
    const s = signal();
    await lab.dir.seed({ [s.identityId]: labIdentity() });
    await withWorker(config, async ({ client }) => {
      const { workflowId } = await submitSignal(client, s, { taskQueue: config.taskQueue, policy: policyWith(timedLadder()) });
      const state = await eventually(async () => {
        const st = await describeContainment(client, workflowId);
        return st.status === 'contained' && st.evidence.length === 3 && st;
      }, 'contained');
      assert.equal(state.position, 'disabled');
      assert.ok(state.suppressedAt);
      const identity = (await lab.dir.read()).identities[s.identityId]!;
      assert.deepEqual(identity.sessions, []);
      assert.deepEqual(identity.tokens, []);
      assert.deepEqual(identity.grants, ['orders:read']);
      assert.equal(identity.enabled, false);
      assert.equal(identity.highRiskApisBlocked, true);
      assert.notEqual(identity.credential?.id, 'cred-original');
      // The new secret is in the vault, and the lab holds only its hash.
      const rotated = state.receipts.rotated!;
      const { secret } = await new LocalVault(config.vaultDir).read(rotated.ref);
      assert.equal(identity.credential?.sha256, LabDirectory.hashSecret(secret));
      assert.deepEqual(state.receipts.grantsBefore, ['orders:read', 'orders:write', 'payments:admin']);
    });
  });
});
