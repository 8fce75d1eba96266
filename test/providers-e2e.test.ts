// The full containment workflow against each real provider, watched from an attacker's live
// connection: cut off at suppression, locked out by rotation, narrowed by restrict, nothing after
// disable, and the original access back after rollback. Also: outages and missing identities.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { LocalVault } from '../activities/secret-sink';
import { describeContainment, submitSignal } from '../client/containments';
import { startPostgres, startRedis } from '../scripts/local-services';
import { localRuns } from '../scripts/worker-process';
import type { FirstStep } from '../workflows/contract';
import type { z } from 'zod';
import type { ContainmentState, StagePlan as StagePlanSchema } from '../workflows/schemas';
import { assertNoSecretsInHistories, closeTestEnv, isolatedConfig, operate, withWorker } from './harness';
import { eventually, policyWith, signal } from './fixtures';
import { availableFixtures, postgresFixture, redisFixture } from './provider-fixtures';

after(closeTestEnv);

const { fixtures, missing } = availableFixtures();
if (missing.length) console.warn(`providers-e2e: SKIPPING ${missing.join(', ')}: server not available on this machine (see test/services.ts)`);

const approvalStages = (keep: string[]): z.input<typeof StagePlanSchema>[] => [
  { stage: 'restrict', gate: { type: 'approval' }, keep },
  { stage: 'rotate', gate: { type: 'approval' } },
  { stage: 'disable', gate: { type: 'approval' } },
];
const denied = (p: Promise<unknown>) => p.then(() => false, () => true);

for (const make of fixtures) {
  const f = make();
  describe(`end to end on ${f.name}`, () => {
    after(() => f.close());

    test('suppress, restrict, rotate, disable and roll back, seen from a live attacker connection', async () => {
      const s = await f.seed();
      const original = await f.provider.inspect(s.identityId);
      const attacker = await f.connect(s.identityId, s.password);
      await attacker.outside(); // full access before
      const cfg = isolatedConfig({ ...f.config, policy: policyWith(approvalStages(s.keep), { suppress: ['revoke-sessions'] }) });
      const vault = new LocalVault(cfg.vaultDir);
      await withWorker(cfg, async ({ client }) => {
        const sig = signal({ provider: f.name, identityId: s.identityId, identityKind: f.name === 'postgres' ? 'database-role' : 'service-account' });
        const t0 = performance.now();
        const { workflowId } = await submitSignal(client, sig, { taskQueue: cfg.taskQueue });
        await eventually(() => denied(attacker.approved()), 'the attacker connection to die', 20_000);
        if (attacker.closed) console.log(`the server closed the attacker's ${f.name} connection ${((await attacker.closed) - t0).toFixed(0)} ms after submit`);

        const until = (what: string, ok: (st: ContainmentState) => boolean) => eventually(async () => ok(await describeContainment(client, workflowId)) && describeContainment(client, workflowId), what);
        const advance = async (to: ContainmentState['position']) => {
          await until(`approval before ${to}`, (st) => st.waiting?.for === 'approval');
          await operate(client, cfg, workflowId, { type: 'advance', reason: `approve ${to}` });
          return until(to, (st) => st.position === to);
        };
        await until('suppressed', (st) => st.position === 'suppressed');
        // The leaked password stops logging in at suppression, not only at rotation (the lab has no login step to block).
        if (f.name !== 'lab') assert.ok(await denied(f.connect(s.identityId, s.password)), `${f.name} blocks new logins until rotation`);

        await advance('restricted');
        assert.deepEqual((await f.provider.inspect(s.identityId)).grants, s.narrowed ?? s.keep, 'narrowed to the approved minimum');

        const rotated = await advance('rotated');
        assert.ok(await denied(f.connect(s.identityId, s.password)), 'the old password no longer logs in');
        const fresh = (await vault.read(rotated.receipts.rotated!.ref)).secret;
        const owner = await f.connect(s.identityId, fresh);
        await owner.approved(); // the approved minimum still works…
        assert.ok(await denied(owner.outside()), '…and nothing beyond it');

        await advance('disabled');
        assert.ok(await denied(owner.approved()), 'the open session ended at disable');
        assert.ok(await denied(f.connect(s.identityId, fresh)), 'nothing logs in after disable');

        await operate(client, cfg, workflowId, { type: 'rollback', reason: 'false positive' });
        const done = await until('rolled back', (st) => st.status === 'rolled-back');
        const { runId } = await client.workflow.getHandle(workflowId).describe();
        const reissued = (await vault.read(LocalVault.refFor(`${workflowId}/${runId}/reissue`))).secret;
        const back = await f.connect(s.identityId, reissued);
        await back.approved();
        await back.outside(); // the original reach, exactly
        const now = await f.provider.inspect(s.identityId);
        assert.deepEqual({ enabled: now.enabled, grants: now.grants }, { enabled: original.enabled, grants: original.grants });
        assert.ok(done.actions.some((a) => a.action === 'rollback:restrict' && a.outcome === 'done'));
        await Promise.all([attacker.close(), owner.close(), back.close()]);
        await assertNoSecretsInHistories(client, [workflowId], [s.password, fresh, reissued]);
      });
    });

    test('a missing identity: suppression fails at once, not after retries, and the containment needs attention', async () => {
      const cfg = isolatedConfig({ ...f.config, policy: policyWith(approvalStages([]), { suppress: ['revoke-sessions'] }) });
      await withWorker(cfg, async ({ client }) => {
        const sig = signal({ provider: f.name, identityId: 'no_such_identity' });
        const { workflowId } = await submitSignal(client, sig, { taskQueue: cfg.taskQueue });
        const st = await eventually(async () => {
          const x = await describeContainment(client, workflowId);
          return x.status === 'needs-attention' && x;
        }, 'needs-attention', 15_000);
        const failed = st.actions.find((a) => a.action === 'suppress:revoke-sessions')!;
        assert.equal(failed.outcome, 'failed');
        assert.match(failed.detail, /identity "no_such_identity" does not exist/);
        await operate(client, cfg, workflowId, { type: 'abort', reason: 'typo in the signal' });
      });
    });
  });
}

// A provider outage on a real server: a private instance, stopped and started again mid-containment.
const outages = [
  { name: 'redis', start: startRedis, fixture: redisFixture },
  { name: 'postgres', start: startPostgres, fixture: postgresFixture },
].filter((o) => !missing.includes(o.name));
for (const o of outages) {
  test(`${o.name} down: suppression retries until the server is back, then succeeds`, async () => {
    const server = await o.start();
    const f = o.fixture(server.adminUrl, server.setupUrl);
    try {
      const s = await f.seed();
      const cfg = isolatedConfig({ ...f.config, policy: policyWith(approvalStages([]), { suppress: ['revoke-sessions'] }) });
      await withWorker(cfg, async ({ client }) => {
        await server.halt();
        const { workflowId } = await submitSignal(client, signal({ provider: o.name, identityId: s.identityId }), { taskQueue: cfg.taskQueue });
        // Suppression is a local activity retrying inside the worker: still suppressing, never given up.
        await new Promise((r) => setTimeout(r, 3000));
        const during = await describeContainment(client, workflowId);
        assert.deepEqual([during.position, during.status], ['new', 'suppressing'], 'suppression keeps retrying while the server is down');
        await server.resume();
        const st = await eventually(async () => {
          const x = await describeContainment(client, workflowId);
          return x.position === 'suppressed' && x;
        }, 'suppressed after the outage', 30_000);
        // Acknowledged by the provider once it was back: the restart ended every connection, but
        // suppression still had a login block to put in place, so it changed something.
        const suppressed = st.actions.find((a) => a.action === 'suppress:revoke-sessions');
        assert.equal(suppressed?.outcome, 'done', `suppression after the outage: ${JSON.stringify(suppressed)}`);
        // The call that succeeded was a retry: the first step's attempt failed (v6), and the
        // action's own local activity, retrying, landed it.
        const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
        const [first] = localRuns(events, 'loadPolicyAndSuppress');
        const tried = (first?.result as FirstStep | undefined)?.attempts.find((x) => x.action === 'revoke-sessions');
        assert.ok(tried && 'error' in tried && tried.retry, `the first attempt failed while the server was down: ${JSON.stringify(tried)}`);
        const landed = localRuns(events, 'suppress').filter((r) => r.result);
        assert.equal(landed.length, 1, 'its own activity landed it');
        assert.ok(await denied(f.connect(s.identityId, s.password)), 'the leaked password is blocked once the server is back');
        await operate(client, cfg, workflowId, { type: 'abort', reason: 'drill over' });
      });
    } finally {
      await f.close();
      await server.stop();
    }
  });
}
