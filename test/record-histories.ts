// Records histories of representative containments into test/histories/, for the replay test.
// Run it when the workflow changes on purpose *before* any containment runs on the old code:
//   npx tsx test/run.ts test/record-histories.ts
// Once histories are committed, a change to workflow code must keep them replaying (use patched()).
// After a patched() change, record the new version beside the old: CORDON_HISTORY_VERSION=v2.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { parsePolicy } from '../workflows/policy';
import { closeTestEnv } from './harness';
import { approvalLadder, labIdentity, policyWith, timedLadder } from './fixtures';
import { scenario, type Scenario } from './scenario';

after(closeTestEnv);

// A new workflow version records beside the old ones (CORDON_HISTORY_VERSION=v2 …), so replay
// covers containments started on every version still running.
const VERSION = process.env.CORDON_HISTORY_VERSION ? `${process.env.CORDON_HISTORY_VERSION}-` : '';

async function save(sc: Scenario, name: string, runId?: string): Promise<void> {
  const history = await sc.client.workflow.getHandle(sc.workflowId, runId).fetchHistory();
  const file = `${VERSION}${name}.json`;
  await writeFile(join(__dirname, 'histories', file), historyToJSON(history));
  // v3 refuses to run under an id that does not match its identity, so replay needs the real id.
  const index = join(__dirname, 'histories', 'workflow-ids.json');
  const ids = existsSync(index) ? (JSON.parse(readFileSync(index, 'utf8')) as Record<string, string>) : {};
  writeFileSync(index, `${JSON.stringify({ ...ids, [file]: sc.workflowId }, null, 1)}\n`);
}

test('record: timed ladder to contained', () =>
  scenario({ policy: policyWith(timedLadder('100ms'), { retainFor: '1s' }) }, async (sc) => {
    await sc.until('closed', (s) => s.closedReason !== undefined);
    await sc.client.workflow.getHandle(sc.workflowId).result();
    await save(sc, 'timed-ladder');
  }));

test('record: approvals, hold/resume, rollback at disabled', () =>
  scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
    for (const stage of ['restrict', 'rotate', 'disable'] as const) {
      await sc.until(`approval for ${stage}`, (s) => s.waiting?.stage === stage && s.waiting.for === 'approval');
      if (stage === 'rotate') {
        await sc.command('hold');
        await sc.until('held', (s) => s.status === 'held');
        await sc.command('resume');
        await sc.until('approval again', (s) => s.status === 'active' && s.waiting?.for === 'approval');
      }
      await sc.command('advance');
    }
    await sc.until('contained', (s) => s.status === 'contained');
    await sc.command('rollback', 'false positive');
    await sc.client.workflow.getHandle(sc.workflowId).result();
    await save(sc, 'approvals-rollback');
  }));

test('record: watch escalated by a harsher signal, then aborted', () => {
  const policy = parsePolicy({
    version: 'replay-escalation',
    rules: [
      { name: 'harsh', severity: 90, match: { minConfidence: 0.8 }, suppress: ['revoke-sessions', 'revoke-tokens'], evidence: ['grants'], stages: [{ stage: 'restrict', gate: { type: 'timer', after: '0s' }, keep: [] }, { stage: 'disable', gate: { type: 'approval' } }], retainFor: '1h' },
      { name: 'watch', severity: 10, match: {}, suppress: ['force-step-up'], evidence: ['sessions'], stages: [], retainFor: '1h' },
    ],
  });
  return scenario({ policy, signal: { confidence: 0.4 } }, async (sc) => {
    await sc.until('watching', (s) => s.status === 'watching');
    await sc.submit({ confidence: 0.95 });
    await sc.until('approval for disable', (s) => s.waiting?.stage === 'disable');
    await sc.command('abort', 'handled by the owner');
    await sc.client.workflow.getHandle(sc.workflowId).result();
    await save(sc, 'escalation-abort');
  });
});

test('record: suppression fails, needs attention, aborted', () =>
  scenario({ policy: policyWith(timedLadder()), identity: null }, async (sc) => {
    await sc.until('needs-attention', (s) => s.status === 'needs-attention');
    await sc.command('abort', 'identity gone');
    await sc.client.workflow.getHandle(sc.workflowId).result();
    await save(sc, 'needs-attention-abort');
  }));

test('record: dependency gate cleared by an operator, slow evidence', () =>
  scenario(
    {
      policy: policyWith([{ stage: 'disable', gate: { type: 'dependency-check', recheckEvery: '1h' } }], { retainFor: '1s' }),
      identity: { ...labIdentity(), dependents: [{ name: 'ci pipeline' }], faults: { evidenceDelayMs: 300 } },
    },
    async (sc) => {
      await sc.until('dependency check', (s) => s.waiting?.for === 'dependencies');
      await sc.command('dependencies-cleared', 'pipeline moved');
      await sc.client.workflow.getHandle(sc.workflowId).result();
      await save(sc, 'dependency-gate');
    },
  ));

test('record: dry run', () =>
  scenario({ policy: policyWith(timedLadder('50ms'), { retainFor: '1s' }), dryRun: true }, async (sc) => {
    await sc.client.workflow.getHandle(sc.workflowId).result();
    await save(sc, 'dry-run');
  }));

// v3: verified operators, refused commands on the record, two approvers, a part-way rollback retried.
test('record: two approvers, refused commands, rollback retried after a failure', () =>
  scenario({ policy: policyWith([{ stage: 'restrict', gate: { type: 'approval', approvers: 2 }, keep: ['orders:read'] }, { stage: 'disable', gate: { type: 'approval' } }]) }, async (sc) => {
    await sc.until('approval to restrict', (s) => s.waiting?.stage === 'restrict');
    await sc.client.workflow.getHandle(sc.workflowId).signal('command', { type: 'advance', reason: 'no token' });
    await sc.command('advance', 'first', { as: 'ann', roles: ['responder'] });
    await sc.command('advance', 'again', { as: 'ann', roles: ['responder'] }).catch(() => undefined);
    await sc.command('advance', 'second', { as: 'bob', roles: ['responder'] });
    await sc.until('approval to disable', (s) => s.waiting?.stage === 'disable');
    await sc.command('advance', 'disable', { as: 'ann', roles: ['responder'] });
    await sc.until('contained', (s) => s.status === 'contained');
    const kept = await sc.identity();
    await sc.lab.dir.update((s) => void delete s.identities[sc.signal.identityId]);
    await sc.command('rollback', 'false positive', { as: 'cleo', roles: ['lead'] });
    await sc.until('needs attention', (s) => s.status === 'needs-attention');
    await sc.lab.dir.update((s) => void (s.identities[sc.signal.identityId] = kept));
    await sc.command('rollback', 'retry', { as: 'cleo', roles: ['lead'] });
    await sc.client.workflow.getHandle(sc.workflowId).result();
    await save(sc, 'two-person-rollback-retry');
  }));

test('record: continue-as-new during a dependency wait', () =>
  scenario(
    {
      policy: policyWith([{ stage: 'disable', gate: { type: 'dependency-check', recheckEvery: '20ms' } }], { retainFor: '1s' }),
      identity: { ...labIdentity(), dependents: [{ name: 'ci pipeline' }] },
      historyLimit: 200,
    },
    async (sc) => {
      const first = (await sc.client.workflow.getHandle(sc.workflowId).describe()).runId;
      await sc.until('a second run', (s) => (s.run ?? 1) >= 2, 90_000); // v4: ~6 events per check, ~1 check a second
      await sc.command('dependencies-cleared', 'pipeline moved');
      await sc.client.workflow.getHandle(sc.workflowId).result();
      await save(sc, 'continued-as-new', first);
    },
  ));

test('record: a cancellation request refused while evidence is in flight, the ladder goes on', () =>
  // Evidence (12 s) outlasts the first workflow task's heartbeat (8 s): from v5 it runs in that task.
  scenario({ policy: policyWith(approvalLadder().slice(0, 1), { retainFor: '1s' }), identity: { ...labIdentity(), faults: { evidenceDelayMs: 12_000 } } }, async (sc) => {
    await sc.until('approval to restrict', (s) => s.waiting?.for === 'approval');
    await sc.client.workflow.getHandle(sc.workflowId).cancel();
    await sc.until('the refusal on the record', (s) => s.actions.some((a) => a.action === 'cancel'));
    await sc.command('advance', 'approved after the cancellation attempt');
    await sc.client.workflow.getHandle(sc.workflowId).result();
    await save(sc, 'cancel-refused');
  }));
