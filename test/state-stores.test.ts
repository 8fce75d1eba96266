// The vault and the evidence store across workers: one secret per idempotency key whichever
// worker or process issues it (files on one host, PostgreSQL across hosts), the vault key's
// checks, and evidence written by one worker read and verified through another.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { loadConfig, redact, type CordonConfig } from '../activities/config';
import { testActivities } from './activities';
import { LabDirectory, LabProvider } from '../activities/providers/lab';
import { LocalVault } from '../activities/secret-sink';
import { FileTable } from '../activities/state-store';
import { openStateStores, type StateStores } from '../activities/stores';
import { describeContainment, submitSignal } from '../client/containments';
import type { Policy } from '../workflows/policy';
import type { Target } from '../workflows/schemas';
import { closeTestEnv, isolatedConfig, withWorker } from './harness';
import { captured, eventually, labIdentity, policyWith, signal, timedLadder } from './fixtures';
import { inCI, stateDatabase } from './services';

after(closeTestEnv);

const owner: Target = { provider: 'lab', identityId: 'svc-race', kind: 'service-account' };
const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Runs test/vault-race.ts twice on one folder; both issue the same keys at the same moment. */
async function raceTwoProcesses(dir: string, keys: number): Promise<Array<Record<string, string>>> {
  const twins = range(2).map(() => spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'vault-race.ts'), dir, String(keys)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const outputs = twins.map((c) => {
    let out = '';
    c.stdout!.on('data', (d: Buffer) => void (out += d.toString()));
    return { ready: new Promise<void>((ok) => c.stdout!.on('data', () => out.includes('ready\n') && ok())), done: new Promise<string>((ok, fail) => c.once('exit', (code) => (code === 0 ? ok(out) : fail(new Error(`vault-race exited ${code}`))))) };
  });
  await Promise.all(outputs.map((o) => o.ready));
  for (const c of twins) c.stdin!.write('go\n');
  return (await Promise.all(outputs.map((o) => o.done))).map((o) => JSON.parse(o.split('\n').filter(Boolean).at(-1)!) as Record<string, string>);
}

describe('the file vault (one host)', () => {
  test('two vaults on one data folder mint one secret per key (two instances, then two processes, racing)', async () => {
    const dir = tmp('cordon-vault-');
    const a = new LocalVault(dir);
    const b = new LocalVault(dir);
    const keys = range(40).map((i) => `rotate/${i}`);
    const [ra, rb] = await Promise.all([a, b].map((v) => Promise.all(keys.map((k) => v.issue(k, owner)))));
    for (const i of range(keys.length)) assert.equal(ra![i]!.secret, rb![i]!.secret, `two secrets minted under ${keys[i]}`);
    assert.equal((await a.refs()).length, keys.length);
    assert.equal((await b.read(ra![0]!.ref.ref)).secret, ra![0]!.secret);

    const [p1, p2] = await raceTwoProcesses(tmp('cordon-vault-'), 40);
    assert.equal(Object.keys(p1!).length, 40);
    assert.deepEqual(p1, p2, 'two processes on one folder minted different secrets under one key');
  });

  test('the vault key: CORDON_VAULT_KEY is 32 bytes of base64; a key file beside the data must be mode 0600', async () => {
    const data = tmp('cordon-key-');
    assert.throws(() => loadConfig({ CORDON_DATA_DIR: data, CORDON_VAULT_KEY: randomBytes(16).toString('base64') }), /CORDON_VAULT_KEY.*32 bytes/);
    assert.throws(() => loadConfig({ CORDON_DATA_DIR: data, CORDON_VAULT_KEY: 'not base64 at all!' }), /CORDON_VAULT_KEY/);
    assert.equal(loadConfig({ CORDON_DATA_DIR: data, CORDON_VAULT_KEY: randomBytes(32).toString('base64') }).vaultKey?.length, 44);

    // A generated key file is the owner's alone.
    const fresh = tmp('cordon-key-');
    await new LocalVault(fresh).issue('k', owner);
    assert.equal(statSync(join(fresh, 'vault.key')).mode & 0o777, 0o600);

    const dir = tmp('cordon-key-');
    const keyFile = join(dir, 'vault.key');
    writeFileSync(keyFile, randomBytes(32).toString('base64'), { mode: 0o644 });
    chmodSync(keyFile, 0o644);
    await assert.rejects(new LocalVault(dir).issue('k', owner), (err: Error) => /vault\.key/.test(err.message) && /0644/.test(err.message) && /chmod 600/.test(err.message));
    chmodSync(keyFile, 0o600);
    await new LocalVault(dir).issue('k', owner);

    const short = tmp('cordon-key-');
    writeFileSync(join(short, 'vault.key'), randomBytes(16).toString('base64'), { mode: 0o600 });
    await assert.rejects(new LocalVault(short).issue('k', owner), /32 bytes/);
  });

  test('a file table keeps the first value of a key, leaves no temporary file, and makes its folder again once it is removed', async () => {
    const dir = join(tmp('cordon-table-'), 'records');
    const table = new FileTable(dir, true);
    assert.equal(await table.putIfAbsent('ab-1', 'first'), 'first');
    assert.equal(await table.putIfAbsent('ab-1', 'second'), 'first', 'a key put again keeps its first value');
    assert.deepEqual(readdirSync(join(dir, 'ab')), ['ab-1.json'], 'no temporary file is left');
    rmSync(dir, { recursive: true });
    assert.equal(await table.putIfAbsent('ab-2', 'again'), 'again', 'the folder it made before is made again');
    assert.deepEqual(await table.keys(), ['ab-2']);
  });

  test('evidence is read back through another store on the same folder, and a tampered artifact is refused', async () => {
    const a = isolatedConfig();
    const b = { ...isolatedConfig(), evidenceDir: a.evidenceDir };
    await withStores([a, b], async ([sa, sb]) => {
      const ref = await sa!.evidence.put('cordon/lab/x', 'grants', { contentType: 'application/json', body: '{"grants":["orders:read"]}' });
      const back = await sb!.evidence.read(ref.sha256);
      assert.deepEqual(back, { containmentId: 'cordon/lab/x', kind: 'grants', contentType: 'application/json', body: '{"grants":["orders:read"]}' });
      const file = new URL(ref.uri);
      writeFileSync(file, '{"containmentId":"cordon/lab/x","kind":"grants","contentType":"application/json","body":"{}"}');
      await assert.rejects(sb!.evidence.read(ref.sha256), /sha256/);
      await assert.rejects(sb!.evidence.read('0'.repeat(64)), /no evidence/);
    });
  });
});

async function withStores<T>(configs: CordonConfig[], fn: (s: StateStores[]) => Promise<T>): Promise<T> {
  const stores = configs.map((c) => openStateStores(c));
  try {
    return await fn(stores);
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
}

const setupUrl = process.env.CORDON_TEST_POSTGRES_SETUP_URL;
if (!setupUrl && inCI()) throw new Error('CORDON_TEST_POSTGRES_SETUP_URL is not set: the state store tests need the private PostgreSQL (test/run.ts)');

describe('the PostgreSQL state store (several workers)', { skip: !setupUrl && 'no private PostgreSQL on this machine' }, () => {
  const vaultKey = randomBytes(32).toString('base64');
  const worker = (stateUrl: string, overrides: Partial<CordonConfig> & { policy?: Policy } = {}) => isolatedConfig({ stateUrl, vaultKey, ...overrides });

  test('configuration: CORDON_STATE_URL is a postgres URL, needs a shared vault key, and is printed masked', async () => {
    const url = await stateDatabase();
    const data = tmp('cordon-cfg-');
    assert.throws(() => loadConfig({ CORDON_DATA_DIR: data, CORDON_STATE_URL: 'mysql://u:p@h/db', CORDON_VAULT_KEY: vaultKey }), /CORDON_STATE_URL/);
    assert.throws(() => loadConfig({ CORDON_DATA_DIR: data, CORDON_STATE_URL: url }), /CORDON_VAULT_KEY/);
    const c = loadConfig({ CORDON_DATA_DIR: data, CORDON_STATE_URL: url, CORDON_VAULT_KEY: vaultKey });
    assert.equal(c.stateUrl, url);
    const password = new URL(url).password;
    assert.ok(!redact(url).includes(password));
    await withStores([c], async ([s]) => {
      assert.ok(!s!.where.includes(password), s!.where);
      assert.match(s!.where, /postgres/);
    });
  });

  test('two workers mint one secret per key; the table holds ciphertext only; another key is refused', async () => {
    const url = await stateDatabase();
    await withStores([worker(url), worker(url)], async ([a, b]) => {
      const keys = range(40).map((i) => `rotate/${i}`);
      const [ra, rb] = await Promise.all([a!, b!].map((s) => Promise.all(keys.map((k) => s.secrets.issue(k, owner)))));
      for (const i of range(keys.length)) assert.equal(ra![i]!.secret, rb![i]!.secret, `two secrets minted under ${keys[i]}`);
      assert.deepEqual(await b!.secrets.read(ra![7]!.ref.ref), { secret: ra![7]!.secret, owner, issuedAt: (await a!.secrets.read(ra![7]!.ref.ref)).issuedAt });

      const db = new pg.Client({ connectionString: url });
      await db.connect();
      try {
        const rows = JSON.stringify((await db.query('SELECT * FROM cordon_vault')).rows);
        for (const r of ra!) {
          assert.ok(!rows.includes(r.secret) && !rows.includes(Buffer.from(r.secret).toString('base64')), 'a plaintext secret in the table');
        }
      } finally {
        await db.end();
      }
    });
    await withStores([worker(url, { vaultKey: randomBytes(32).toString('base64') })], async ([other]) => {
      await assert.rejects(other!.secrets.issue('rotate/0', owner), /another key/);
    });
  });

  test('evidence written by one worker is read through another, and a tampered artifact is refused', async () => {
    const url = await stateDatabase();
    await withStores([worker(url), worker(url)], async ([a, b]) => {
      const ref = await a!.evidence.put('cordon/lab/y', 'sessions', { contentType: 'application/json', body: '[{"id":"s1"}]' });
      assert.ok(!ref.uri.includes(new URL(url).password), ref.uri);
      assert.deepEqual(await b!.evidence.read(ref.sha256), { containmentId: 'cordon/lab/y', kind: 'sessions', contentType: 'application/json', body: '[{"id":"s1"}]' });
      assert.deepEqual(await b!.evidence.list(), [ref.sha256]);
      const db = new pg.Client({ connectionString: url });
      await db.connect();
      try {
        await db.query(`UPDATE cordon_evidence SET value = replace(value, 's1', 's2')`);
      } finally {
        await db.end();
      }
      await assert.rejects(b!.evidence.read(ref.sha256), /sha256/);
    });
  });

  test('a rotation retried on another worker yields the same secret and changes nothing', async () => {
    const url = await stateDatabase();
    const labFile = join(tmp('cordon-lab-'), 'directory.json');
    const lab = new LabProvider(labFile);
    await lab.dir.seed({ 'svc-retried': labIdentity() });
    const target: Target = { provider: 'lab', identityId: 'svc-retried', kind: 'service-account' };
    await withStores([worker(url), worker(url)], async ([a, b]) => {
      const on = (s: StateStores) => testActivities(new Map([['lab', lab]]), tmp('cordon-acts-'), s);
      const first = await on(a!).rotateCredential(target, 'cordon/lab/svc-retried/run-1/rotate');
      const retried = await on(b!).rotateCredential(target, 'cordon/lab/svc-retried/run-1/rotate');
      assert.deepEqual(retried, first);
      const state = await lab.dir.read();
      assert.equal(state.mutations.filter((m) => m.op === 'rotate').length, 1);
      assert.equal(state.identities['svc-retried']!.credential?.sha256, LabDirectory.hashSecret((await b!.secrets.read(first.ref)).secret));
    });
  });

  test('a worker configured with CORDON_STATE_URL keeps the rotated secret and the evidence in PostgreSQL', async () => {
    const url = await stateDatabase();
    const config = worker(url, { policy: policyWith(timedLadder('50ms'), { retainFor: '1s' }) });
    const s = signal();
    const lab = new LabProvider(config.labFile);
    await lab.dir.seed({ [s.identityId]: labIdentity() });
    const state = await withWorker(config, async ({ client }) => {
      const { workflowId } = await submitSignal(client, s, { taskQueue: config.taskQueue });
      return eventually(async () => {
        const st = await describeContainment(client, workflowId);
        return st.position === 'disabled' && captured(st) === 3 && st;
      }, 'the ladder to finish');
    });
    // Read through another worker's stores: nothing of it is in this worker's folder.
    await withStores([worker(url)], async ([other]) => {
      const { secret } = await other!.secrets.read(state.receipts.rotated!.ref);
      assert.equal((await lab.dir.read()).identities[s.identityId]!.credential?.sha256, LabDirectory.hashSecret(secret));
      for (const e of state.evidence) assert.equal((await other!.evidence.read(e.sha256)).kind, e.kind);
    });
    for (const sub of ['vault', 'evidence']) assert.ok(!existsSync(join(config.dataDir, sub)), `${sub}/ in the worker's own folder, with a shared state store`);
  });
});
