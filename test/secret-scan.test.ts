// The suite's secret scan must be able to fail: it covers workflow histories, what the worker
// logged (the SDK runtime's log, captured in tests by quiet-runtime.ts), every file of every
// evidence store and vault a test used, and the PostgreSQL state tables when one is configured.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Runtime } from '@temporalio/worker';
import { describeContainment, submitSignal } from '../client/containments';
import { LabProvider } from '../activities/providers/lab';
import { openStateStores } from '../activities/stores';
import { assertNoSecretsInHistories, closeTestEnv, isolatedConfig, testEnv, withWorker } from './harness';
import { eventually, labIdentity, policyWith, signal } from './fixtures';
import { stateDatabase } from './services';

after(closeTestEnv);

const fakeSecret = () => `S3cr3t-${randomBytes(12).toString('base64url')}`;
const caught = (where: RegExp) => (err: Error) => err.name === 'AssertionError' && where.test(err.message);

test('a secret in a worker log line fails the scan (plain, in metadata, base64)', async () => {
  const { client } = await testEnv();
  const clean = fakeSecret();
  await assertNoSecretsInHistories(client, [], [clean]);
  const logger = Runtime.instance().logger;
  const plain = fakeSecret();
  logger.warn(`rotated credential to ${plain}`);
  await assert.rejects(assertNoSecretsInHistories(client, [], [plain]), caught(/worker log/));
  const inMeta = fakeSecret();
  logger.info('Activity completed', { result: { password: inMeta } });
  await assert.rejects(assertNoSecretsInHistories(client, [], [inMeta]), caught(/worker log/));
  const encoded = fakeSecret();
  logger.error('payload', { data: Buffer.from(encoded).toString('base64') });
  await assert.rejects(assertNoSecretsInHistories(client, [], [encoded]), caught(/worker log/));
});

test('a secret in any file of an evidence store or in plaintext in a vault fails the scan', async () => {
  const { client } = await testEnv();
  const config = isolatedConfig();
  const secret = fakeSecret();
  await assertNoSecretsInHistories(client, [], [secret]);
  mkdirSync(join(config.evidenceDir, 'ab'), { recursive: true });
  writeFileSync(join(config.evidenceDir, 'ab', `ab${'0'.repeat(62)}.json`), JSON.stringify({ body: JSON.stringify({ password: secret }) }));
  await assert.rejects(assertNoSecretsInHistories(client, [], [secret]), caught(/evidence/));

  const inVault = fakeSecret();
  mkdirSync(join(config.vaultDir, 'secrets'), { recursive: true });
  writeFileSync(join(config.vaultDir, 'secrets', 'leftover.tmp'), inVault);
  await assert.rejects(assertNoSecretsInHistories(client, [], [inVault]), caught(/vault/));
});

test('a secret in a row of the PostgreSQL evidence store fails the scan', { skip: !process.env.CORDON_TEST_POSTGRES_SETUP_URL && 'no private PostgreSQL' }, async () => {
  const { client } = await testEnv();
  const config = isolatedConfig({ stateUrl: await stateDatabase(), vaultKey: randomBytes(32).toString('base64') });
  const secret = fakeSecret();
  const stores = openStateStores(config);
  try {
    await stores.evidence.put('cordon/lab/z', 'config-snapshot', { contentType: 'application/json', body: JSON.stringify({ apiKey: secret }) });
  } finally {
    await stores.close();
  }
  await assert.rejects(assertNoSecretsInHistories(client, [], [secret]), caught(/evidence row/));
});

test("what a real worker logs is scanned: a failing activity's message is in the worker log", async () => {
  const config = isolatedConfig({ policy: policyWith([], { retainFor: '1h' }) });
  // The identity's id stands in for a secret that an error message carries into the log.
  const marker = `svc-${randomBytes(8).toString('hex')}`;
  const s = signal({ identityId: marker });
  await new LabProvider(config.labFile).dir.seed({ [marker]: labIdentity({ faults: { evidenceFails: true } }) });
  const workflowId = await withWorker(config, async ({ client }) => {
    const { workflowId } = await submitSignal(client, s, { taskQueue: config.taskQueue });
    await eventually(async () => (await describeContainment(client, workflowId)).actions.some((a) => a.outcome === 'failed'), 'the evidence capture to fail');
    await client.workflow.getHandle(workflowId).terminate('test over');
    return workflowId;
  });
  const { client } = await testEnv();
  await assert.rejects(assertNoSecretsInHistories(client, [], [`lab fault: evidence capture for ${marker} fails`]), caught(/worker log/));
  assert.ok((await assertNoSecretsInHistories(client, [workflowId], [fakeSecret()])) === 1);
});
