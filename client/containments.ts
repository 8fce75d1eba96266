// The client library: start or join a containment from a signal, steer it, describe and list.
// Everything is validated here first, so bad input is refused before anything reaches Temporal.
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import { z } from 'zod';
import type { ContainmentInput } from '../workflows/containment';
import type { JWK } from 'jose';
import { sealCommand } from '../activities/command-seal';
import { containmentWorkflowId, dryRunWorkflowId, shortHash } from '../workflows/ids';
import { commandSignal, commandUpdate, identitySignal, stateQuery } from '../workflows/messages';
import { PolicyError, parsePolicy } from '../workflows/policy';
import {
  ContainmentState,
  IdentityKind,
  IdentitySignal,
  LadderPosition,
  OperatorCommand,
  ProviderName,
  Status,
  describeIssues,
} from '../workflows/schemas';
import { SA } from '../workflows/search-attributes';

/** Input that was refused before anything was started or changed. */
export class CordonInputError extends Error {
  override name = 'CordonInputError';
}

/** A command the containment refused (its validator said why). */
export class CommandRejectedError extends Error {
  override name = 'CommandRejectedError';
}

function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(input);
  if (!r.success) throw new CordonInputError(`invalid ${what}: ${describeIssues(r.error)}`);
  return r.data;
}

export interface SubmitOptions {
  taskQueue: string;
  /** A candidate policy: only for a dry run. A real containment runs on the worker's approved policy. */
  policy?: unknown;
  /** Runs the real playbook with no side effects, under its own workflow id. */
  dryRun?: boolean;
  /** Benchmarks only: the evidence-first baseline Cordon is measured against. */
  evidenceFirst?: boolean;
  /** Continue as new past this many history events (tests). */
  historyLimit?: number;
}

export interface Submitted {
  workflowId: string;
  runId: string;
  signal: IdentitySignal;
  /** Set when the signal was already seen by a closed containment of this identity: nothing changed. */
  duplicateOf?: string;
}

/**
 * Starts the identity's containment, or joins the running one (signal-with-start). After a
 * containment has closed, a new signal starts a new one under the same id; a signal id the
 * closed run already saw changes nothing.
 */
export async function submitSignal(client: Client, rawSignal: unknown, o: SubmitOptions): Promise<Submitted> {
  const signal = parseOrThrow(IdentitySignal, rawSignal, 'signal');
  if (o.policy !== undefined && !o.dryRun) {
    throw new CordonInputError("a policy is accepted only for a dry run: containments run on the worker's approved policy (CORDON_POLICY)");
  }
  if (o.policy !== undefined) {
    try {
      parsePolicy(o.policy);
    } catch (err) {
      if (err instanceof PolicyError) throw new CordonInputError(`candidate ${err.message}`);
      throw err;
    }
  }
  const workflowId = o.dryRun ? dryRunWorkflowId(signal) : containmentWorkflowId(signal);
  const input: ContainmentInput = { signal, dryRun: o.dryRun, candidatePolicy: o.policy, evidenceFirst: o.evidenceFirst, historyLimit: o.historyLimit };
  const start = (reuse: 'REJECT_DUPLICATE' | 'ALLOW_DUPLICATE') =>
    client.workflow.signalWithStart<(i: ContainmentInput) => Promise<ContainmentState>, [IdentitySignal]>('containment', {
      workflowId,
      taskQueue: o.taskQueue,
      args: [input],
      signal: identitySignal,
      signalArgs: [signal],
      // A running containment is joined (USE_EXISTING); the reuse policy decides for a closed one.
      workflowIdReusePolicy: reuse,
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: [
        { key: SA.identity, value: signal.identityId },
        { key: SA.provider, value: signal.provider },
        { key: SA.kind, value: signal.identityKind },
        { key: SA.stage, value: 'new' },
        { key: SA.status, value: 'suppressing' },
        { key: SA.trigger, value: signal.trigger },
        { key: SA.risk, value: signal.riskScore },
        { key: SA.waitingFor, value: 'none' },
        // Set at start too, so the ready-made views leave a dry run out from its first moment.
        { key: SA.dryRun, value: !!o.dryRun },
      ],
      staticSummary: `${o.dryRun ? 'DRY RUN: ' : ''}contain ${signal.identityKind} ${signal.identityId} on ${signal.provider} (${signal.trigger}, confidence ${signal.confidence})`,
      staticDetails: `Signal ${signal.signalId} from ${signal.source} at ${signal.observedAt}, risk ${signal.riskScore}, criticality ${signal.assetCriticality}. The plan comes from the worker's approved policy: see the current details.`,
    });
  if (o.dryRun) return { workflowId, runId: (await start('ALLOW_DUPLICATE')).signaledRunId, signal };
  // No look first: a new identity (every one in a burst) costs one round trip. Only when a closed
  // run holds the id is it asked whether it saw this signal, and a new run started if not.
  try {
    return { workflowId, runId: (await start('REJECT_DUPLICATE')).signaledRunId, signal };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  const closedRun = await closedRunThatSaw(client, workflowId, signal.signalId);
  if (closedRun) return { workflowId, runId: closedRun, signal, duplicateOf: closedRun };
  return { workflowId, runId: (await start('ALLOW_DUPLICATE')).signaledRunId, signal };
}

/** The closed latest run of `workflowId` if it already saw `signalId` (its result lists every signal it saw). */
async function closedRunThatSaw(client: Client, workflowId: string, signalId: string): Promise<string | undefined> {
  let desc;
  try {
    desc = await client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
  if (desc.status.name !== 'COMPLETED') return undefined;
  const result = (await client.workflow.getHandle(workflowId, desc.runId).result()) as ContainmentState;
  return result.seen?.includes(shortHash(signalId)) || result.signals.some((x) => x.signalId === signalId) ? desc.runId : undefined;
}

/** The plan a containment chose, once its first workflow task has run. */
export async function planOf(client: Client, workflowId: string, timeoutMs = 10_000): Promise<ContainmentState['plan'] | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return (await describeContainment(client, workflowId)).plan;
    } catch (err) {
      if (Date.now() > deadline) return undefined;
      if (err instanceof WorkflowNotFoundError) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface CommandOptions {
  /** The operator's OIDC access token; sealed to the workers' key before it leaves this process. */
  token: string;
  /** The workers' public sealing key (readSealPublicKey). */
  sealKey: JWK;
  /** 'update' answers with the containment's verdict; 'signal' is fire-and-forget, as from the UI. */
  via?: 'update' | 'signal';
}

/** Validates a command as an operator writes it (the token is added when it is sealed). */
export const parseCommand = (raw: unknown) => parseOrThrow(OperatorCommand.omit({ token: true }), raw, 'command');

/** Builds the command payload: the gate filled in from the containment when not given, the token sealed. */
export async function prepareCommand(client: Client, workflowId: string, raw: unknown, o: Pick<CommandOptions, 'token' | 'sealKey'>): Promise<OperatorCommand> {
  const c = parseCommand(raw);
  let gate = c.gate;
  if (!gate && (c.type === 'advance' || c.type === 'dependencies-cleared')) gate = (await describeContainment(client, workflowId)).waiting?.gate;
  const token = await sealCommand(o.sealKey, o.token, { workflowId, type: c.type, gate, reason: c.reason });
  return { ...c, ...(gate ? { gate } : {}), token };
}

/** Sends an operator command; with an update, a refused command throws CommandRejectedError. */
export async function sendCommand(client: Client, workflowId: string, rawCommand: unknown, o: CommandOptions): Promise<{ status?: string; by?: string }> {
  const handle = client.workflow.getHandle(workflowId);
  try {
    const command = await prepareCommand(client, workflowId, rawCommand, o);
    if (o.via === 'signal') {
      await handle.signal(commandSignal, command);
      return {};
    }
    return await handle.executeUpdate(commandUpdate, { args: [command] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new CommandRejectedError(err.cause?.message ?? err.message);
    if (err instanceof WorkflowNotFoundError) throw new CordonInputError(`no running containment ${workflowId}`);
    throw err;
  }
}

export async function describeContainment(client: Client, workflowId: string): Promise<ContainmentState> {
  return client.workflow.getHandle(workflowId).query(stateQuery);
}

export const ListFilter = z
  .object({
    stage: LadderPosition.optional(),
    status: Status.optional(),
    provider: ProviderName.optional(),
    kind: IdentityKind.optional(),
    identity: z.string().min(1).max(200).optional(),
    open: z.boolean().optional(),
  })
  .strict();
export type ListFilter = z.infer<typeof ListFilter>;

/** Builds a visibility query from validated filters (values are enums or quoted safely). */
export function visibilityQuery(rawFilter: unknown): string {
  const f = parseOrThrow(ListFilter, rawFilter, 'filter');
  const quote = (v: string) => `"${v.replace(/["\\]/g, '\\$&')}"`;
  const parts = ["WorkflowType = 'containment'"];
  if (f.stage) parts.push(`${SA.stage.name} = ${quote(f.stage)}`);
  if (f.status) parts.push(`${SA.status.name} = ${quote(f.status)}`);
  if (f.provider) parts.push(`${SA.provider.name} = ${quote(f.provider)}`);
  if (f.kind) parts.push(`${SA.kind.name} = ${quote(f.kind)}`);
  if (f.identity) parts.push(`${SA.identity.name} = ${quote(f.identity)}`);
  if (f.open) parts.push("ExecutionStatus = 'Running'");
  return parts.join(' AND ');
}

export interface ContainmentSummary {
  workflowId: string;
  runId: string;
  executionStatus: string;
  identity?: string;
  provider?: string;
  kind?: string;
  stage?: string;
  status?: string;
  trigger?: string;
  risk?: number;
  /** What it waits for (approval, dependencies, timer, hold, attention, none). */
  waitingFor?: string;
  /** Since when it has stood as it does (stage, status, what it waits for). */
  since?: string;
  nextDeadline?: string;
  dryRun?: boolean;
  startTime: string;
}

export async function listContainments(client: Client, filter: unknown = {}, limit = 100): Promise<ContainmentSummary[]> {
  const out: ContainmentSummary[] = [];
  for await (const w of client.workflow.list({ query: visibilityQuery(filter) })) {
    out.push(summarize(w));
    if (out.length >= limit) break;
  }
  return out;
}

function summarize(w: WorkflowExecutionInfo): ContainmentSummary {
  const sa = w.typedSearchAttributes;
  return {
    workflowId: w.workflowId,
    runId: w.runId,
    executionStatus: w.status.name,
    identity: sa.get(SA.identity),
    provider: sa.get(SA.provider),
    kind: sa.get(SA.kind),
    stage: sa.get(SA.stage),
    status: sa.get(SA.status),
    trigger: sa.get(SA.trigger),
    risk: sa.get(SA.risk),
    waitingFor: sa.get(SA.waitingFor),
    since: sa.get(SA.stageSince)?.toISOString(),
    nextDeadline: sa.get(SA.nextDeadline)?.toISOString(),
    dryRun: sa.get(SA.dryRun),
    startTime: w.startTime.toISOString(),
  };
}
