// Operators steer containments: advance, hold/resume, abort, rollback at every stage, and the
// dependency gate. Each case ends by checking the lab provider's exact state.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { LabDirectory } from '../activities/providers/lab';
import { LocalVault } from '../activities/secret-sink';
import { CommandRejectedError } from '../client/containments';
import type { LadderPosition } from '../workflows/schemas';
import { closeTestEnv, testEnv } from './harness';
import { approvalLadder, labIdentity, policyWith } from './fixtures';
import { scanTouchedHistories, scenario, type Scenario } from './scenario';

after(closeTestEnv);

const ORIGINAL_GRANTS = ['orders:read', 'orders:write', 'payments:admin'];
const POSITIONS: LadderPosition[] = ['suppressed', 'restricted', 'rotated', 'disabled'];

/** Advances an approval-gated ladder until it stands at `position`. */
async function climbTo(sc: Scenario, position: LadderPosition): Promise<void> {
  await sc.until('suppressed', (s) => s.position !== 'new');
  while ((await sc.state()).position !== position) {
    const at = (await sc.state()).position;
    await sc.until('an approval to be pending', (s) => s.waiting?.for === 'approval');
    await sc.command('advance', `approved past ${at}`);
    await sc.until(`to leave ${at}`, (s) => s.position !== at);
  }
}

describe('advance, hold and resume', () => {
  test('approval gates wait for advance; hold blocks advance until resume', async () => {
    await scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
      await sc.until('waiting for approval to restrict', (s) => s.waiting?.for === 'approval' && s.waiting.stage === 'restrict');
      assert.deepEqual((await sc.identity()).grants, ORIGINAL_GRANTS, 'restrict ran without approval');

      await sc.command('hold', 'talking to the owner');
      const held = await sc.until('held', (s) => s.status === 'held');
      assert.equal(held.waiting?.for, 'hold');
      await assert.rejects(sc.command('advance'), (err: Error) => err instanceof CommandRejectedError && /on hold: resume it first/.test(err.message));
      await assert.rejects(sc.command('hold'), /already on hold/);

      await sc.command('resume', 'owner unreachable');
      await sc.until('active again', (s) => s.status === 'active' && s.waiting?.for === 'approval');
      assert.deepEqual((await sc.identity()).grants, ORIGINAL_GRANTS, 'resume alone must not pass an approval gate');

      await sc.command('advance', 'approved by IR lead');
      const restricted = await sc.until('restricted', (s) => s.position === 'restricted');
      assert.deepEqual((await sc.identity()).grants, ['orders:read']);
      const restrictAction = restricted.actions.find((a) => a.action === 'restrict')!;
      assert.equal(restrictAction.actor, 'tester', 'the stage is attributed to the verified operator who advanced it');
      assert.deepEqual(restrictAction.before, ORIGINAL_GRANTS);
      assert.deepEqual(restrictAction.after, ['orders:read']);
      // Every command is on the record with who and why, refused ones included (attempts are evidence).
      const commands = restricted.actions.filter((a) => a.action.startsWith('command:')).map((a) => `${a.action}/${a.outcome}/${a.actor}/${a.detail}`);
      assert.deepEqual(commands, [
        'command:hold/done/tester/talking to the owner',
        'command:advance/rejected/tester/the containment is on hold: resume it first',
        'command:hold/rejected/tester/the containment is already on hold',
        'command:resume/done/tester/owner unreachable',
        `command:advance/done/tester/approved by IR lead (gate ${held.waiting!.gate})`,
      ]);
      assert.equal(restricted.actions.find((a) => a.action === 'command:advance')!.principal?.sub, 'dev:tester', 'the verified subject is recorded');
    });
  });

  test('commands also arrive as signals (CLI, UI); a refused or malformed one changes nothing and is recorded', async () => {
    await scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
      await sc.until('waiting for approval', (s) => s.waiting?.for === 'approval');
      await sc.command('resume', 'not held', { via: 'signal' });
      await sc.command('advance', 'go', { via: 'signal' });
      const state = await sc.until('restricted', (s) => s.position === 'restricted');
      const commands = state.actions.filter((a) => a.action.startsWith('command:')).map((a) => `${a.action}:${a.outcome}`);
      assert.deepEqual(commands, ['command:resume:rejected', 'command:advance:done']);
      // A malformed signal payload (as `temporal workflow signal` could send) changes nothing; the attempt is on the record.
      await sc.client.workflow.getHandle(sc.workflowId).signal('command', { type: 'aprove' });
      const after = await sc.until('the malformed signal recorded', (s) => s.actions.some((a) => a.action === 'command:aprove'));
      assert.match(after.actions.find((a) => a.action === 'command:aprove')!.detail, /invalid command: type/);
      assert.equal(after.position, 'restricted');
      assert.equal(after.waiting?.stage, 'rotate');
    });
  });

  test('invalid transitions are refused with the reason', async () => {
    await scenario({ policy: policyWith(approvalLadder().slice(0, 1)) }, async (sc) => {
      await sc.until('waiting for approval', (s) => s.waiting?.for === 'approval');
      await assert.rejects(sc.command('resume'), /not on hold/);
      await assert.rejects(sc.command('dependencies-cleared'), /no dependency check is waiting/);
      await sc.command('advance');
      await sc.until('contained', (s) => s.status === 'contained');
      await assert.rejects(sc.command('advance', 'late', { gate: 'restrict#1' }), /nothing is waiting for an advance/);
      await assert.rejects(sc.command('hold'), /nothing to hold/);
      await sc.command('abort', 'done here');
      await sc.until('aborted', (s) => s.status === 'aborted');
      await assert.rejects(sc.command('rollback'), /closed|no running containment|completed/i);
    });
  });
});

describe('abort stops where it stands', () => {
  for (const position of POSITIONS.slice(0, 3)) {
    test(`abort at ${position} keeps what is done and goes no further`, async () => {
      await scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
        await climbTo(sc, position);
        const before = await sc.identity();
        await sc.command('abort', 'false alarm, but keep the state for review');
        const state = await sc.until('aborted', (s) => s.status === 'aborted');
        assert.equal(state.position, position);
        assert.match(state.closedReason!, /aborted by tester: false alarm/);
        assert.deepEqual(await sc.identity(), before);
      });
    });
  }
});

describe('rollback undoes completed steps in reverse', () => {
  for (const position of POSITIONS) {
    test(`rollback at ${position} restores the original grants and enabled flag`, async () => {
      await scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
        await climbTo(sc, position);
        const originalCredential = sc.seeded!.credential!.sha256;
        await sc.command('rollback', 'false positive: the owner ran a migration');
        const state = await sc.until('rolled back', (s) => s.status === 'rolled-back');
        const identity = await sc.identity();
        assert.deepEqual(identity.grants, ORIGINAL_GRANTS);
        assert.equal(identity.enabled, true);
        assert.equal(identity.highRiskApisBlocked, false);
        assert.deepEqual(identity.sessions, [], 'revoked sessions stay revoked');
        const undone = state.actions.filter((a) => a.action.startsWith('rollback:')).map((a) => a.action);
        const inReverse = [
          ...(position === 'disabled' ? ['rollback:disable'] : []),
          ...(['rotated', 'disabled'].includes(position) ? ['rollback:rotate'] : []),
          ...(position !== 'suppressed' ? ['rollback:restrict'] : []),
        ];
        // Steps undo in reverse order; suppression lifts then run in parallel (any order).
        assert.deepEqual(undone.slice(0, inReverse.length), inReverse);
        assert.deepEqual(undone.slice(inReverse.length, -1).sort(), ['rollback:suppress:block-high-risk-apis', 'rollback:suppress:revoke-sessions']);
        assert.equal(undone.at(-1), 'rollback:revocations');
        if (['rotated', 'disabled'].includes(position)) {
          // A rotated secret cannot be un-rotated: a third one is issued to the owner, and the record says so.
          assert.notEqual(identity.credential!.sha256, originalCredential);
          const rotated = await new LocalVault(sc.config.vaultDir).read(state.receipts.rotated!.ref);
          assert.notEqual(identity.credential!.sha256, LabDirectory.hashSecret(rotated.secret));
          assert.match(state.actions.find((a) => a.action === 'rollback:rotate')!.detail, /cannot be un-rotated: re-issued to the owner/);
          assert.equal((await sc.mutations()).filter((m) => m.op === 'rotate').length, 2);
        } else {
          assert.equal(identity.credential!.sha256, originalCredential);
        }
        assert.equal(state.position, 'new');
      });
    });
  }

  test('rollback of an identity that was already disabled leaves it disabled', async () => {
    await scenario({ policy: policyWith(approvalLadder()), identity: { enabled: false } }, async (sc) => {
      await climbTo(sc, 'disabled');
      await sc.command('rollback', 'false positive');
      await sc.until('rolled back', (s) => s.status === 'rolled-back');
      assert.equal((await sc.identity()).enabled, false);
    });
  });
});

describe('dependency gate', () => {
  test('disable waits while dependents exist, until an operator clears them', async () => {
    const policy = policyWith([
      { stage: 'restrict', gate: { type: 'timer', after: '0s' }, keep: [] },
      { stage: 'disable', gate: { type: 'dependency-check', recheckEvery: '1h' } },
    ]);
    const dependents = [{ name: 'nightly payments job', address: '10.0.0.5' }];
    await scenario({ policy, identity: { ...labIdentity(), dependents } }, async (sc) => {
      // The gate opens before its first check has answered: wait for the check's result.
      const waiting = await sc.until('dependency check', (s) => s.waiting?.for === 'dependencies' && /dependent\(s\)/.test(s.waiting.detail));
      assert.match(waiting.waiting!.detail, /1 dependent\(s\) still use .*: nightly payments job/);
      assert.equal((await sc.identity()).enabled, true);
      await sc.command('dependencies-cleared', 'job moved to its own service account');
      await sc.until('disabled', (s) => s.position === 'disabled');
      assert.equal((await sc.identity()).enabled, false);
    });
  });

  test('with no dependents, disable goes ahead by itself', async () => {
    const policy = policyWith([{ stage: 'disable', gate: { type: 'dependency-check', recheckEvery: '1h' } }]);
    await scenario({ policy }, async (sc) => {
      const state = await sc.until('contained', (s) => s.status === 'contained');
      assert.match(state.actions.find((a) => a.action === 'disable')!.actor, /no dependents/);
    });
  });
});

test('no secret value appears in any workflow history this file produced', async () => {
  const { client } = await testEnv();
  const { workflows, secrets } = await scanTouchedHistories(client);
  assert.ok(workflows >= 10 && secrets >= 4, `scanned ${workflows} histories for ${secrets} secrets`);
});
