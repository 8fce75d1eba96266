// One containment against a freshly seeded lab identity, with a real worker running; remembers
// every workflow and vault it touched so a file can end with a secret scan over all of them.
import type { Client } from '@temporalio/client';
import type { CordonConfig } from '../activities/config';
import { LabProvider, type LabIdentity, type LabIdentityInput, type Mutation } from '../activities/providers/lab';
import { LocalVault } from '../activities/secret-sink';
import { describeContainment, sendCommand, submitSignal } from '../client/containments';
import type { Policy } from '../workflows/policy';
import type { CommandType, ContainmentState, IdentitySignal } from '../workflows/schemas';
import { assertNoSecrets, isolatedConfig, withWorker, type SecretScan } from './harness';
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
  command(type: CommandType, reason?: string): Promise<{ status?: string }>;
  submit(overrides: Partial<IdentitySignal>): Promise<void>;
}

export async function scenario(
  o: { policy?: Policy; identity?: Partial<LabIdentityInput> | null; signal?: Partial<IdentitySignal>; dryRun?: boolean },
  body: (sc: Scenario) => Promise<void>,
): Promise<void> {
  const config = isolatedConfig();
  const lab = new LabProvider(config.labFile);
  const s = signal(o.signal);
  if (o.identity !== null) await lab.dir.seed({ [s.identityId]: labIdentity(o.identity ?? {}) });
  const seeded = (await lab.dir.read()).identities[s.identityId];
  touched.vaults.add(config.vaultDir);
  await withWorker(config, async ({ client }) => {
    const { workflowId } = await submitSignal(client, s, { taskQueue: config.taskQueue, policy: o.policy, dryRun: o.dryRun });
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
      command: (type, reason = 'test') => sendCommand(client, workflowId, { type, by: 'tester@example.com', reason }),
      submit: async (overrides) => {
        await submitSignal(client, { ...s, signalId: `sig-${Math.random().toString(36).slice(2)}`, ...overrides }, { taskQueue: config.taskQueue, policy: o.policy });
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
