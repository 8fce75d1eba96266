// Wires the workflow bundle and the activities to a connection: the one place a Cordon worker is built.
import { setFlagsFromString } from 'node:v8';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkflowBundle } from '@temporalio/worker';
import { createContainmentActivities, noop } from '../activities/containment';
import type { CordonConfig } from '../activities/config';
import { closeProviders, createProviders, warmProviders, type ProviderRegistry } from '../activities/providers/registry';
import { loadOrCreateSealKey } from '../activities/command-seal';
import { OperatorVerifier } from '../activities/operator-auth';
import { loadApprovedPolicy } from '../activities/policy-store';
import { loadSsfSettings } from '../activities/ssf-config';
import { loadOrCreateSigningKey } from '../activities/ssf-keys';
import { createTransmitActivities, receiversFor } from '../activities/ssf-transmit';
import { openStateStores } from '../activities/stores';
import type { ApprovedPolicy } from '../workflows/contract';

const bundles = new Map<boolean, Promise<WorkflowBundle>>();

/**
 * Modules every bundle's workflow threads evaluate before their first workflow (Cordon's and the
 * bench's floor): with stack traces off, the realm's quiet `Error.prepareStackTrace` (see the module).
 */
export function preloadModules({ stackTraces }: { stackTraces: boolean }): string[] {
  return stackTraces ? [] : [require.resolve('../workflows/quiet-promise-stacks')];
}

/** Bundles workflows/ once per process and setting; every worker in the process reuses it. */
export function workflowBundle({ stackTraces = false }: { stackTraces?: boolean } = {}): Promise<WorkflowBundle> {
  let bundle = bundles.get(stackTraces);
  if (!bundle) {
    bundle = bundleWorkflowCode({
      workflowsPath: require.resolve('../workflows'),
      // Evaluated once per workflow thread and shared by every containment (see the modules).
      preloadModules: [...preloadModules({ stackTraces }), require.resolve('../workflows/shared-zod'), require.resolve('../workflows/shared-schemas')],
      logger: quietBundlerLogger,
    });
    bundles.set(stackTraces, bundle);
  }
  return bundle;
}

export const quietBundlerLogger = { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} };

export interface CordonWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  config: CordonConfig;
  providers?: ProviderRegistry;
  shutdownGraceTime?: string;
}

export interface CordonWorker {
  worker: Worker;
  policy: ApprovedPolicy;
  close(): Promise<void>;
  state: string;
  /** Each provider's admin connection opened ahead of the first containment (running beside start-up). */
  warmed: ReturnType<typeof warmProviders>;
}

export async function createCordonWorker(o: CordonWorkerOptions): Promise<CordonWorker> {
  // Refuses to start on an invalid policy or sealing key, before anything polls.
  const policy = loadApprovedPolicy(o.config.policyFile);
  const seal = await loadOrCreateSealKey(o.config.dataDir, o.config.sealKeyFile);
  // The receivers this worker pushes Cordon's SETs to; an invalid SSF file stops it here.
  const ssf = loadSsfSettings(o.config.ssf.file);
  const signing = await loadOrCreateSigningKey(o.config.dataDir, o.config.ssf.signingKeyFile);
  const providers = o.providers ?? createProviders(o.config);
  const warmed = warmProviders(providers);
  // Files beside the data by default; PostgreSQL when CORDON_STATE_URL is set (several workers).
  const state = openStateStores(o.config);
  const activities = {
    ...createContainmentActivities({
      providers,
      evidence: state.evidence,
      secrets: state.secrets,
      policy,
      operators: new OperatorVerifier(o.config.oidc, seal.privateJwk),
      evidenceInTask: o.config.evidenceInTask,
      receivers: (kind) => receiversFor(ssf, kind),
    }),
    ...createTransmitActivities({ settings: ssf, issuer: o.config.ssf.issuer, signingKey: signing.privateJwk }),
    noop,
  };
  const close = async () => {
    await state.close();
    if (!o.providers) await closeProviders(providers);
  };
  // Applies to isolates created from now on: the workflow thread this worker starts, not this one.
  setFlagsFromString(`--max-old-space-size=${o.config.workflowHeapMb}`);
  let worker: Worker;
  try {
    worker = await Worker.create({
      connection: o.connection,
      namespace: o.namespace,
      taskQueue: o.config.taskQueue,
      workflowBundle: await workflowBundle({ stackTraces: o.config.workflowStackTraces }),
      activities,
      shutdownGraceTime: o.shutdownGraceTime ?? '10s',
      maxCachedWorkflows: o.config.maxCachedWorkflows,
    });
  } catch (err) {
    await close();
    throw err;
  }
  return { worker, policy, close, state: state.where, warmed };
}
