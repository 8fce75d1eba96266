// Per-test-file helpers: a client on the run's dev server, an isolated data folder and task
// queue, and a real worker running while a test body runs.
import './quiet-runtime';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig, type CordonConfig } from '../activities/config';
import type { ProviderRegistry } from '../activities/providers/registry';
import { createCordonWorker } from '../workers/worker';

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
/** A configuration with its own data folder and task queue, so test files never share state. */
export function isolatedConfig(overrides: Partial<CordonConfig> = {}): CordonConfig {
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-test-'));
  return {
    ...loadConfig({ CORDON_DATA_DIR: dataDir }),
    taskQueue: `cordon-test-${process.pid}-${++counter}`,
    metricsPort: 0,
    ...overrides,
  };
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

/** Fails if any of `secrets` appears in `text` as is, JSON-escaped or base64-encoded. */
export function assertNoSecretsIn(text: string, secrets: string[], where: string): void {
  assert.ok(secrets.length > 0, 'the scan needs at least one secret to look for');
  for (const secret of secrets) {
    for (const form of [secret, JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString('base64')]) {
      assert.ok(!text.includes(form), `a secret appears in ${where}`);
    }
  }
}

/** Scans every evidence file under `evidenceDir` (what a containment captured) for `secrets`; returns how many. */
export function assertNoSecretsInEvidence(evidenceDir: string, secrets: string[]): number {
  const files = (readdirSync(evidenceDir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[]).filter((e) => e.isFile());
  for (const f of files) assertNoSecretsIn(readFileSync(join(f.parentPath, f.name), 'utf8'), secrets, `evidence ${f.name}`);
  return files.length;
}

/**
 * Fails if any of `secrets` appears in the history of any of the workflows, in any encoding a
 * payload might use (plain, JSON-escaped, base64).
 */
export async function assertNoSecretsInHistories(client: Client, workflowIds: string[], secrets: string[]): Promise<number> {
  assert.ok(secrets.length > 0, 'the scan needs at least one secret to look for');
  let scanned = 0;
  for (const id of workflowIds) {
    const history = await client.workflow.getHandle(id).fetchHistory();
    const text = JSON.stringify(history);
    const decoded = [...text.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8')).join('\n');
    for (const secret of secrets) {
      for (const form of [secret, Buffer.from(secret).toString('base64')]) {
        assert.ok(!text.includes(form) && !decoded.includes(form), `a secret appears in the history of ${id}`);
      }
    }
    scanned++;
  }
  return scanned;
}
