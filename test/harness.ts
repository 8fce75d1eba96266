// Per-test-file helpers: a client on the run's dev server, an isolated data folder and task
// queue, a real worker running while a test body runs, and the secret scan.
import { workerLog } from './quiet-runtime';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Runtime } from '@temporalio/worker';
import { loadConfig, type CordonConfig } from '../activities/config';
import type { ProviderRegistry } from '../activities/providers/registry';
import { PgState } from '../activities/state-store';
import { findSecret } from '../scripts/secret-scan';
import { createCordonWorker } from '../workers/worker';

workerLog.capture(); // the secret scan reads what this process's workers logged

let envPromise: Promise<TestWorkflowEnvironment> | undefined;

/** The dev server started by test/run.ts. Running a file without it is a loud failure. */
export function testEnv(): Promise<TestWorkflowEnvironment> {
  const address = process.env.CORDON_TEST_TEMPORAL_ADDRESS;
  if (!address) throw new Error('CORDON_TEST_TEMPORAL_ADDRESS is not set: run tests through `npm test` (test/run.ts starts the dev server)');
  envPromise ??= TestWorkflowEnvironment.createFromExistingServer({ address });
  return envPromise;
}

export async function closeTestEnv(): Promise<void> {
  if (envPromise) await (await envPromise).teardown();
  envPromise = undefined;
}

let counter = 0;
/** Every configuration this file made: the secret scan reads all their vaults and evidence. */
const configs: CordonConfig[] = [];

/** A configuration with its own data folder and task queue, so test files never share state. */
export function isolatedConfig(overrides: Partial<CordonConfig> = {}): CordonConfig {
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-test-'));
  const config = {
    ...loadConfig({ CORDON_DATA_DIR: dataDir }),
    taskQueue: `cordon-test-${process.pid}-${++counter}`,
    metricsPort: 0,
    ...overrides,
  };
  configs.push(config);
  return config;
}

export interface WorkerContext {
  client: Client;
  config: CordonConfig;
}

/** Runs `fn` while a real Cordon worker polls the config's task queue. */
export async function withWorker<T>(config: CordonConfig, fn: (ctx: WorkerContext) => Promise<T>, providers?: ProviderRegistry): Promise<T> {
  const env = await testEnv();
  const { worker, close } = await createCordonWorker({ connection: env.nativeConnection, namespace: env.namespace ?? 'default', config, providers, shutdownGraceTime: '1s' });
  try {
    return await worker.runUntil(fn({ client: env.client, config }));
  } finally {
    await close();
  }
}

/** Every file under `dir` (none if it does not exist), whatever its name. */
async function filesUnder(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return names.filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name));
}

export interface SecretScan {
  workflows: number;
  logLines: number;
  evidenceFiles: number;
  vaultFiles: number;
  stateRows: number;
}

/**
 * Fails if any of `secrets` appears, in any form a payload or a log might use (plain,
 * JSON-escaped, base64), in: the histories of `workflowIds`; what this process's workers logged
 * (every entry from DEBUG up, with its metadata); every file of the evidence store and the vault of
 * every configuration this file made (the vault may hold only ciphertext); and the PostgreSQL
 * state tables of those configured with one.
 */
export async function assertNoSecrets(client: Client, workflowIds: string[], secrets: string[]): Promise<SecretScan> {
  assert.ok(secrets.length > 0, 'the scan needs at least one secret to look for');
  const scan: SecretScan = { workflows: 0, logLines: 0, evidenceFiles: 0, vaultFiles: 0, stateRows: 0 };
  const check = (where: string, text: string) => assert.ok(findSecret(text, secrets) === undefined, `a secret appears in ${where}`);
  for (const id of workflowIds) {
    check(`the history of ${id}`, JSON.stringify(await client.workflow.getHandle(id).fetchHistory()));
    scan.workflows++;
  }
  Runtime.instance().flushLogs(); // forwarded entries wait in a buffer for about 100 ms
  for (const line of workerLog.lines()) {
    check(`the worker log: ${line.slice(0, 200)}`, line);
    scan.logLines++;
  }
  for (const c of configs) {
    for (const f of await filesUnder(c.evidenceDir)) {
      check(`the evidence file ${f}`, await readFile(f, 'utf8'));
      scan.evidenceFiles++;
    }
    for (const f of await filesUnder(c.vaultDir)) {
      check(`the vault file ${f}`, await readFile(f, 'utf8'));
      scan.vaultFiles++;
    }
    if (c.stateUrl) {
      const db = new PgState(c.stateUrl);
      try {
        for (const name of ['evidence', 'vault'] as const) {
          const table = db.table(name);
          for (const key of await table.keys()) {
            check(`the ${name} row ${key} in ${table.where}`, (await table.get(key)) ?? '');
            scan.stateRows++;
          }
        }
      } finally {
        await db.close();
      }
    }
  }
  return scan;
}

/** The scan above; returns how many histories it read. */
export async function assertNoSecretsInHistories(client: Client, workflowIds: string[], secrets: string[]): Promise<number> {
  return (await assertNoSecrets(client, workflowIds, secrets)).workflows;
}
