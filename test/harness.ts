// Per-test-file helpers: a client on the run's dev server, an isolated data folder and task
// queue, and a real worker running while a test body runs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig, type CordonConfig } from '../activities/config';
import type { ProviderRegistry } from '../activities/providers/registry';
import { createCordonWorker } from '../workers/worker';
import { DefaultLogger, Runtime } from '@temporalio/worker';

// Before any connection exists: keep the SDK's logs to warnings so test output stays readable.
Runtime.install({ logger: new DefaultLogger('WARN') });

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
