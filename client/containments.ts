// The client library: start or join a containment from a signal, steer it, describe and list.
// Everything is validated here first, so bad input is refused before anything reaches Temporal.
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import { z } from 'zod';
import type { ContainmentInput } from '../workflows/containment';
import { containmentWorkflowId } from '../workflows/ids';
import { commandSignal, commandUpdate, identitySignal, stateQuery } from '../workflows/messages';
import { DEFAULT_POLICY, PolicyError, evaluatePolicy, parsePolicy, type Policy } from '../workflows/policy';
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
  /** Defaults to the shipped policy; validated either way. */
  policy?: unknown;
  /** Runs the real playbook with no side effects, under its own workflow id. */
  dryRun?: boolean;
  /** Benchmarks only: the evidence-first baseline Cordon is measured against. */
  evidenceFirst?: boolean;
}

export interface Submitted {
  workflowId: string;
  runId: string;
  signal: IdentitySignal;
  plan: string;
}

/** Starts the identity's containment, or joins the running one (signal-with-start). */
export async function submitSignal(client: Client, rawSignal: unknown, o: SubmitOptions): Promise<Submitted> {
  const signal = parseOrThrow(IdentitySignal, rawSignal, 'signal');
  let policy: Policy;
  try {
    policy = o.policy === undefined ? DEFAULT_POLICY : parsePolicy(o.policy);
  } catch (err) {
    if (err instanceof PolicyError) throw new CordonInputError(err.message);
    throw err;
  }
  const plan = evaluatePolicy(policy, signal, { dryRun: o.dryRun });
  const base = containmentWorkflowId(signal);
  const workflowId = o.dryRun ? `${base.replace(/^cordon\//, 'cordon-dryrun/')}/${signal.signalId}` : base;
  const input: ContainmentInput = { signal, policy, dryRun: o.dryRun, evidenceFirst: o.evidenceFirst };
  const handle = await client.workflow.signalWithStart<(i: ContainmentInput) => Promise<ContainmentState>, [IdentitySignal]>('containment', {
    workflowId,
    taskQueue: o.taskQueue,
    args: [input],
    signal: identitySignal,
    signalArgs: [signal],
    typedSearchAttributes: [
      { key: SA.identity, value: signal.identityId },
      { key: SA.provider, value: signal.provider },
      { key: SA.kind, value: signal.identityKind },
      { key: SA.stage, value: 'new' },
      { key: SA.status, value: 'suppressing' },
      { key: SA.trigger, value: signal.trigger },
      { key: SA.risk, value: signal.riskScore },
    ],
    staticSummary: `${o.dryRun ? 'DRY RUN: ' : ''}contain ${signal.identityKind} ${signal.identityId} on ${signal.provider} (${signal.trigger}, confidence ${signal.confidence})`,
    staticDetails: `Signal ${signal.signalId} from ${signal.source} at ${signal.observedAt}; plan ${plan.rule} (${plan.policyVersion}): suppress [${plan.suppress.join(', ')}], stages [${plan.stages.map((s) => s.stage).join(' → ') || 'none: watch'}]`,
  });
  return { workflowId, runId: handle.signaledRunId, signal, plan: plan.rule };
}

export interface CommandOptions {
  /** 'update' answers with the containment's verdict; 'signal' is fire-and-forget, as from the UI. */
  via?: 'update' | 'signal';
}

/** Sends an operator command; with an update, a refused command throws CommandRejectedError. */
export async function sendCommand(client: Client, workflowId: string, rawCommand: unknown, o: CommandOptions = {}): Promise<{ status?: string }> {
  const command = parseOrThrow(OperatorCommand, rawCommand, 'command');
  const handle = client.workflow.getHandle(workflowId);
  if (o.via === 'signal') {
    await handle.signal(commandSignal, command);
    return {};
  }
  try {
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
    startTime: w.startTime.toISOString(),
  };
}
