// Per-test-file helpers: a client on the run's dev server, an isolated data folder and task
// queue, and a real worker running while a test body runs.
import './quiet-runtime';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { readSealPublicKey } from '../activities/command-seal';
import { loadConfig, type CordonConfig } from '../activities/config';
import { createContainmentActivities } from '../activities/containment';
import { EvidenceStore } from '../activities/evidence-store';
import { OperatorVerifier } from '../activities/operator-auth';
import { loadApprovedPolicy } from '../activities/policy-store';
import { LocalVault } from '../activities/secret-sink';
import { sendCommand } from '../client/containments';
import { DevIssuer } from '../client/dev-issuer';
import type { Policy } from '../workflows/policy';
import type { CordonRole } from '../workflows/schemas';
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
/**
 * A configuration with its own data folder and task queue, so test files never share state. Its
 * worker approves `policy` (written to a file in the data folder, as an operator would) and
 * trusts the run's development issuer.
 */
export function isolatedConfig(overrides: Partial<CordonConfig> & { policy?: Policy } = {}): CordonConfig {
  const { policy, ...rest } = overrides;
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-test-'));
  const policyFile = policy ? join(dataDir, 'policy.json') : undefined;
  if (policyFile) writeFileSync(policyFile, JSON.stringify(policy));
  return {
    ...loadConfig({ CORDON_DATA_DIR: dataDir, CORDON_OIDC_ISSUER: process.env.CORDON_OIDC_ISSUER, CORDON_OIDC_AUDIENCE: process.env.CORDON_OIDC_AUDIENCE, ...(policyFile ? { CORDON_POLICY: policyFile } : {}) }),
    taskQueue: `cordon-test-${process.pid}-${++counter}`,
    metricsPort: 0,
    ...rest,
  };
}

let issuer: Promise<DevIssuer> | undefined;
/** A token from the run's development issuer (test/run.ts serves it); `roles` are Cordon roles. */
export async function testToken(username: string, roles: CordonRole[] = ['lead'], o: { ttlSeconds?: number; now?: number } = {}): Promise<string> {
  const dir = process.env.CORDON_TEST_ISSUER_DIR;
  const iss = process.env.CORDON_OIDC_ISSUER;
  if (!dir || !iss) throw new Error('no development issuer: run tests through `npm test` (test/run.ts starts one)');
  issuer ??= DevIssuer.open(dir);
  return (await issuer).mint({ issuer: iss, audience: process.env.CORDON_OIDC_AUDIENCE ?? 'cordon', username, roles: roles.map((r) => `cordon-${r}`), ...o });
}

export interface OperateOptions {
  as?: string;
  roles?: CordonRole[];
  via?: 'update' | 'signal';
  /** A ready token instead of one minted for `as` (forged, expired, another issuer's…). */
  token?: string;
}

/** Sends a command as an authenticated operator (by default a lead named "tester"), sealed for the config's workers. */
export async function operate(client: Client, config: CordonConfig, workflowId: string, command: { type: string; reason?: string; gate?: string }, o: OperateOptions = {}) {
  const token = o.token ?? (await testToken(o.as ?? 'tester', o.roles ?? ['lead']));
  return sendCommand(client, workflowId, { reason: 'test', ...command }, { token, sealKey: readSealPublicKey(config.dataDir), via: o.via });
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

/** The activities a worker would run, over `providers`, without a worker (provider-level tests). */
export function testActivities(providers: ProviderRegistry, dir: string) {
  return createContainmentActivities({
    providers,
    evidence: new EvidenceStore(join(dir, 'evidence')),
    secrets: new LocalVault(join(dir, 'vault')),
    policy: loadApprovedPolicy(),
    operators: new OperatorVerifier(loadConfig({}).oidc),
  });
}
