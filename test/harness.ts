// Per-test-file helpers: a client on the run's dev server, an isolated data folder and task
// queue, a real worker running while a test body runs, and the secret scan.
import { workerLog } from './quiet-runtime';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { readSealPublicKey } from '../activities/command-seal';
import { Runtime } from '@temporalio/worker';
import { loadConfig, type CordonConfig } from '../activities/config';
import { sendCommand } from '../client/containments';
import { DevIssuer } from '../client/dev-issuer';
import type { Policy } from '../workflows/policy';
import type { CordonRole } from '../workflows/schemas';
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
  const config = {
    ...loadConfig({ CORDON_DATA_DIR: dataDir, CORDON_OIDC_ISSUER: process.env.CORDON_OIDC_ISSUER, CORDON_OIDC_AUDIENCE: process.env.CORDON_OIDC_AUDIENCE, ...(policyFile ? { CORDON_POLICY: policyFile } : {}) }),
    taskQueue: `cordon-test-${process.pid}-${++counter}`,
    metricsPort: 0,
    ...rest,
  };
  configs.push(config);
  return config;
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

