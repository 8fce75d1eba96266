// One containment per identity: repeated signals join, harsher ones escalate, duplicates are
// no-ops; and bad input (signal, command, policy) is refused before anything starts or changes.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import { readSealPublicKey } from '../activities/command-seal';
import { containmentWorkflowId, dryRunWorkflowId } from '../workflows/ids';
import { CordonInputError, sendCommand, submitSignal } from '../client/containments';
import { DEFAULT_POLICY } from '../workflows/default-policy';
import { parsePolicy, PolicyError } from '../workflows/policy';
import { LabProvider } from '../activities/providers/lab';
import type { ContainmentState } from '../workflows/schemas';
import { closeTestEnv, isolatedConfig, testEnv, testToken, withWorker } from './harness';
import { approvalLadder, eventually, labIdentity, policyWith, signal } from './fixtures';
import { scenario } from './scenario';

after(closeTestEnv);

async function countWorkflows(query: string): Promise<number> {
  const { client } = await testEnv();
  return (await client.workflow.count(query)).count;
}

/** Strongly consistent (unlike visibility): the identity's containment does not exist. */
async function assertNotStarted(s: { provider: string; identityId: string }): Promise<void> {
  const { client } = await testEnv();
  await assert.rejects(client.workflow.getHandle(containmentWorkflowId(s)).describe(), (err: Error) => err instanceof WorkflowNotFoundError);
}

describe('one containment per identity', () => {
  test('a repeated signal joins the running containment; a duplicate signal id changes nothing', async () => {
    await scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
      await sc.until('suppressed, evidence in', (s) => s.position === 'suppressed' && s.actions.filter((a) => a.action.startsWith('evidence:')).length === s.plan.evidence.length);
      await sc.submit({ trigger: 'atypical-api-pattern' });
      const joined = await sc.until('second signal', (s) => s.signals.length === 2);
      assert.equal(joined.signals[1]!.trigger, 'atypical-api-pattern');
      const { workflowId } = await submitSignal(sc.client, sc.signal, { taskQueue: sc.config.taskQueue });
      assert.equal(workflowId, sc.workflowId);
      const before = await sc.state();
      await sc.command('hold', 'sync point'); // an update completes after the duplicate signal is handled
      const afterDup = await sc.state();
      assert.equal(afterDup.signals.length, 2, 'the duplicate was recorded');
      assert.deepEqual(afterDup.actions.filter((a) => !a.action.startsWith('command:')), before.actions);
      const runs = await countWorkflows(`WorkflowId = "${sc.workflowId}"`);
      assert.equal(runs, 1);
    });
  });

  test('a higher-confidence signal escalates a watch into the full ladder', async () => {
    const nhi = { kinds: ['service-account' as const], minConfidence: 0.8 };
    const policy = parsePolicy({
      version: 'escalation-test',
      rules: [
        { name: 'harsh', severity: 90, match: nhi, suppress: ['revoke-sessions', 'revoke-tokens'], evidence: [], stages: [{ stage: 'restrict', gate: { type: 'timer', after: '0s' }, keep: [] }, { stage: 'disable', gate: { type: 'timer', after: '0s' } }], retainFor: '1h' },
        { name: 'watch', severity: 10, match: {}, suppress: ['force-step-up'], evidence: [], stages: [], retainFor: '1h' },
      ],
    });
    await scenario({ policy, signal: { confidence: 0.4, trigger: 'off-hours-service-principal' } }, async (sc) => {
      await sc.until('watching', (s) => s.status === 'watching');
      assert.equal((await sc.identity()).sessions.length, 2, 'a watch revokes nothing');
      await sc.submit({ confidence: 0.97, trigger: 'secret-exposed' });
      const state = await sc.until('contained after escalation', (s) => s.status === 'contained');
      assert.equal(state.plan.rule, 'harsh');
      assert.equal(state.position, 'disabled');
      assert.match(state.actions.find((a) => a.action === 'escalate')!.detail, /escalates watch → harsh/);
      const identity = await sc.identity();
      assert.deepEqual(identity.sessions, []);
      assert.deepEqual(identity.tokens, []);
      assert.deepEqual(identity.grants, []);
      assert.equal(identity.enabled, false);
      // A later, gentler signal does not de-escalate.
      await sc.submit({ confidence: 0.3 });
      const after = await sc.until('third signal', (s) => s.signals.length === 3);
      assert.equal(after.plan.rule, 'harsh');
    });
  });
});

describe('bad input is refused and changes nothing', () => {
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['confidence above 1', { confidence: 1.5 }, /confidence: confidence is between 0 and 1/],
    ['unknown identity kind', { identityKind: 'robot' }, /identityKind: /],
    ['unknown trigger', { trigger: 'vibes' }, /trigger: /],
    ['custom trigger without a name', { trigger: 'custom:' }, /custom trigger is written "custom:<name>"/],
    ['risk score not whole', { riskScore: 12.5 }, /riskScore: riskScore is a whole number/],
    ['identity id with spaces', { identityId: 'a b' }, /identityId: identityId must be printable ASCII without spaces/],
    ['bad timestamp', { observedAt: 'yesterday' }, /observedAt: observedAt is an ISO-8601 timestamp/],
    ['unknown field', { extra: 1 }, /Unrecognized key/i],
    ['bad provider name', { provider: 'Keycloak!' }, /provider: provider is a lowercase name/],
  ];
  for (const [what, patch, message] of bad) {
    test(`signal with ${what}`, async () => {
      const config = isolatedConfig();
      const { client } = await testEnv();
      const s = { ...signal(), ...patch };
      await assert.rejects(submitSignal(client, s, { taskQueue: config.taskQueue }), (err: Error) => err instanceof CordonInputError && message.test(err.message));
      if (typeof s.identityId === 'string' && typeof s.provider === 'string') await assertNotStarted(s as { provider: string; identityId: string });
    });
  }

  test('a missing required field is named', async () => {
    const { client } = await testEnv();
    const { source: _source, ...s } = signal();
    await assert.rejects(submitSignal(client, s, { taskQueue: 'nowhere' }), /invalid signal: source: /);
  });

  test('invalid commands are refused before reaching the containment', async () => {
    await scenario({ policy: policyWith(approvalLadder()) }, async (sc) => {
      // The gate opens in the task that ran suppression; evidence lands a task later.
      await sc.until('waiting, evidence in', (s) => s.waiting?.for === 'approval' && s.actions.filter((a) => a.action.startsWith('evidence:')).length === s.plan.evidence.length);
      const before = await sc.state();
      const o = { token: await testToken('tester'), sealKey: readSealPublicKey(sc.config.dataDir) };
      await assert.rejects(sendCommand(sc.client, sc.workflowId, { type: 'nuke', reason: 'y' }, o), /invalid command: type: /);
      await assert.rejects(sendCommand(sc.client, sc.workflowId, { type: 'advance', by: 'x', reason: 'y' }, o), /invalid command: \(input\): Unrecognized key: "by"/);
      await assert.rejects(sendCommand(sc.client, sc.workflowId, { type: 'advance', reason: '' }, o), /reason: a command says why/);
      assert.deepEqual(await sc.state(), before);
    });
  });

  const badPolicies: Array<[string, (p: ReturnType<typeof structuredClone<typeof DEFAULT_POLICY>>) => unknown, RegExp]> = [
    ['stages out of order', (p) => ((p.rules[1]!.stages = [...p.rules[1]!.stages].reverse()), p), /rules\.1\.stages: stages run in the order restrict → rotate → disable/],
    ['no catch-all last rule', (p) => ((p.rules = p.rules.slice(0, 2)), p), /the last rule must match every signal/],
    ['a duplicate rule name', (p) => ((p.rules[2]!.name = p.rules[1]!.name), p), /rule name "nhi-secret-exposed" is used twice/],
    ['a bad duration', (p) => ((p.rules[1]!.stages[1]!.gate = { type: 'timer', after: '5 minutes' } as never), p), /a duration is a number and a unit/],
    ['an unknown suppression action', (p) => ((p.rules[0]!.suppress = ['delete-everything' as never]), p), /rules\.0\.suppress\.0/],
    ['no version', (p) => ({ ...p, version: '' }), /version: a policy has a version/],
  ];
  for (const [what, mutate, message] of badPolicies) {
    test(`policy with ${what}`, async () => {
      assert.throws(() => parsePolicy(mutate(structuredClone(DEFAULT_POLICY))), (err: Error) => err instanceof PolicyError && message.test(err.message));
      const config = isolatedConfig();
      const { client } = await testEnv();
      const s = signal();
      // As a dry run's candidate: refused before anything starts.
      await assert.rejects(submitSignal(client, s, { taskQueue: config.taskQueue, dryRun: true, policy: mutate(structuredClone(DEFAULT_POLICY)) }), (err: Error) => err instanceof CordonInputError && message.test(err.message));
      await assert.rejects(client.workflow.getHandle(dryRunWorkflowId(s)).describe(), (err: Error) => err instanceof WorkflowNotFoundError);
      // As the worker's approved policy: the worker refuses to start.
      const file = join(config.dataDir, 'policy.json');
      writeFileSync(file, JSON.stringify(mutate(structuredClone(DEFAULT_POLICY))));
      await assert.rejects(withWorker({ ...config, policyFile: file }, async () => undefined), (err: Error) => err instanceof PolicyError && message.test(err.message));
    });
  }
});

describe('the cordon CLI', () => {
  const CLI = join(__dirname, '..', 'client', 'cli.ts');
  const cli = (args: string[], input?: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], {
      encoding: 'utf8',
      input,
      env: { ...process.env, TEMPORAL_ADDRESS: process.env.CORDON_TEST_TEMPORAL_ADDRESS, CORDON_TASK_QUEUE: 'cordon-cli-test' },
    });

  test('refuses a bad signal with exit 2 and the field named', async () => {
    const s = { ...signal(), confidence: 7 };
    const r = cli(['submit', '--file', '-'], JSON.stringify(s));
    assert.equal(r.status, 2, r.stderr);
    await assertNotStarted(s);
    assert.match(r.stderr, /cordon: invalid signal: confidence: confidence is between 0 and 1/);
  });

  test('refuses malformed JSON and unknown commands with exit 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-cli-'));
    writeFileSync(join(dir, 's.json'), '{not json');
    const r1 = cli(['submit', '--file', join(dir, 's.json')]);
    assert.equal(r1.status, 2);
    assert.match(r1.stderr, /invalid signal: not JSON/);
    const r2 = cli(['command', 'cordon/lab/x', 'nuke', '--reason', 'why']);
    assert.equal(r2.status, 2);
    assert.match(r2.stderr, /expected one of advance, hold, resume, abort, rollback, dependencies-cleared/);
  });

  test('submits, steers (a refused command exits 3) and describes as JSON', async () => {
    const config = isolatedConfig();
    const s = signal();
    await new LabProvider(config.labFile).dir.seed({ [s.identityId]: labIdentity() });
    // Asynchronous spawns: a synchronous one would freeze the worker running in this process.
    const run = async (args: string[], input?: string) => {
      const child = execFile(process.execPath, ['--import', 'tsx', CLI, ...args], {
        encoding: 'utf8',
        env: { ...process.env, CORDON_DATA_DIR: config.dataDir, TEMPORAL_ADDRESS: process.env.CORDON_TEST_TEMPORAL_ADDRESS, CORDON_TASK_QUEUE: config.taskQueue },
      });
      if (input !== undefined) child.stdin!.end(input);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: string) => (stdout += d));
      child.stderr!.on('data', (d: string) => (stderr += d));
      const status = await new Promise<number | null>((ok) => child.on('close', ok));
      return { status, stdout, stderr };
    };
    const policyFile = join(config.dataDir, 'policy.json');
    writeFileSync(policyFile, JSON.stringify(policyWith(approvalLadder())));
    await withWorker({ ...config, policyFile }, async () => {
      const refusedPolicy = await run(['submit', '--file', '-', '--policy', policyFile], JSON.stringify(s));
      assert.equal(refusedPolicy.status, 2);
      assert.match(refusedPolicy.stderr, /a policy is accepted only for a dry run/);
      const checked = await run(['policy', 'check', policyFile]);
      assert.match(checked.stdout, /valid, version test-1, sha256 [0-9a-f]{64}, 1 rules/);
      const tokenFile = join(config.dataDir, 'me.token');
      writeFileSync(tokenFile, await testToken('me', ['responder']), { mode: 0o600 });
      const submitted = await run(['submit', '--file', '-', '--json'], JSON.stringify(s));
      assert.equal(submitted.status, 0, submitted.stderr);
      const { workflowId } = JSON.parse(submitted.stdout) as { workflowId: string };
      await eventually(async () => {
        const d = await run(['describe', workflowId, '--json']);
        return d.status === 0 && (JSON.parse(d.stdout) as ContainmentState).waiting !== undefined;
      }, 'the containment to wait for approval');
      const noToken = await run(['command', workflowId, 'advance', '--reason', 'test']);
      assert.equal(noToken.status, 2);
      assert.match(noToken.stderr, /no operator token/);
      const refused = await run(['command', workflowId, 'resume', '--reason', 'test', '--token-file', tokenFile]);
      assert.equal(refused.status, 3);
      assert.match(refused.stderr, /refused: resume rejected: the containment is not on hold/);
      const advanced = await run(['command', workflowId, 'advance', '--reason', 'approved', '--token-file', tokenFile]);
      assert.equal(advanced.status, 0, advanced.stderr);
      const state = await eventually(async () => {
        const st = JSON.parse((await run(['describe', workflowId, '--json'])).stdout) as ContainmentState;
        return st.position === 'restricted' && st;
      }, 'restricted');
      assert.equal(state.actions.find((a) => a.action === 'restrict')!.actor, 'me');
      const human = await run(['describe', workflowId]);
      assert.match(human.stdout, /active at restricted/);
      assert.match(human.stdout, /policy {5}test-1 sha256 [0-9a-f]{64}/);
      assert.match(human.stdout, /waiting {4}approval at gate rotate#\d+/);
      const listed = await eventually(async () => {
        const l = await run(['list', '--identity', s.identityId, '--json']);
        const rows = JSON.parse(l.stdout) as Array<{ workflowId: string }>;
        return rows.length === 1 && rows;
      }, 'list to show the containment');
      assert.equal(listed[0]!.workflowId, workflowId);
    });
  });
});
