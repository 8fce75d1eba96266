// One containment against a freshly seeded lab identity, with a real worker running; remembers
// every workflow and vault it touched so a file can end with a secret scan over all of them.
import type { Client } from '@temporalio/client';
import type { CordonConfig } from '../activities/config';
import { LabProvider, type LabIdentity, type LabIdentityInput, type Mutation } from '../activities/providers/lab';
import { LocalVault } from '../activities/secret-sink';
import { describeContainment, submitSignal } from '../client/containments';
import type { Policy } from '../workflows/policy';
import type { CommandType, ContainmentState, IdentitySignal } from '../workflows/schemas';
import { assertNoSecrets, isolatedConfig, operate, withWorker, type OperateOptions, type SecretScan } from './harness';
import { eventually, labIdentity, signal } from './fixtures';

const touched = { workflows: new Set<string>(), vaults: new Set<string>() };

export interface Scenario {
  client: Client;
  config: CordonConfig;
  lab: LabProvider;
  signal: IdentitySignal;
  workflowId: string;
  /** The identity as seeded, before Cordon touched it. */
  seeded?: LabIdentity;
  state(): Promise<ContainmentState>;
  until(what: string, ok: (s: ContainmentState) => boolean, timeoutMs?: number): Promise<ContainmentState>;
  identity(): Promise<LabIdentity>;
  mutations(): Promise<Mutation[]>;
  command(type: CommandType, reason?: string, o?: OperateOptions & { gate?: string }): Promise<{ status?: string; by?: string }>;
  submit(overrides: Partial<IdentitySignal>): Promise<void>;
}

export async function scenario(
  o: {
    policy?: Policy;
    identity?: Partial<LabIdentityInput> | null;
    signal?: Partial<IdentitySignal>;
    dryRun?: boolean;
    historyLimit?: number;
    config?: Partial<CordonConfig>;
    /** Runs after seeding, before the signal is submitted (a lab outage, say). */
    prepare?: (lab: LabProvider) => Promise<void>;
  },
  body: (sc: Scenario) => Promise<void>,
): Promise<void> {
  const config = isolatedConfig({ ...o.config, policy: o.policy });
  const lab = new LabProvider(config.labFile);
  const s = signal(o.signal);
  if (o.identity !== null) await lab.dir.seed({ [s.identityId]: labIdentity(o.identity ?? {}) });
  const seeded = (await lab.dir.read()).identities[s.identityId];
  await o.prepare?.(lab);
  touched.vaults.add(config.vaultDir);
  await withWorker(config, async ({ client }) => {
    // A real containment runs on the worker's approved policy; a dry run brings it as its candidate.
    const { workflowId } = await submitSignal(client, s, { taskQueue: config.taskQueue, dryRun: o.dryRun, historyLimit: o.historyLimit, ...(o.dryRun ? { policy: o.policy } : {}) });
    touched.workflows.add(workflowId);
    const state = () => describeContainment(client, workflowId);
    await body({
      client,
      config,
      lab,
      signal: s,
      workflowId,
      seeded,
      state,
      until: (what, ok, timeoutMs) => eventually(async () => { const st = await state(); return ok(st) && st; }, what, timeoutMs),
      identity: async () => (await lab.dir.read()).identities[s.identityId]!,
      mutations: async () => (await lab.dir.read()).mutations,
      command: (type, reason = 'test', co = {}) => operate(client, config, workflowId, { type, reason, ...(co.gate ? { gate: co.gate } : {}) }, co),
      submit: async (overrides) => {
        await submitSignal(client, { ...s, signalId: `sig-${Math.random().toString(36).slice(2)}`, ...overrides }, { taskQueue: config.taskQueue });
      },
    });
  });
}

/**
 * Scans every history this file produced, what its workers logged and every evidence and vault
 * file it wrote, for every secret its vaults hold.
 */
export async function scanTouchedHistories(client: Client): Promise<SecretScan & { secrets: number }> {
  const secrets: string[] = [];
  for (const dir of touched.vaults) {
    const vault = new LocalVault(dir);
    for (const ref of await vault.refs()) secrets.push((await vault.read(ref)).secret);
  }
  const scan = await assertNoSecrets(client, [...touched.workflows], secrets);
  return { ...scan, secrets: secrets.length };
}
