// The containment ladder, top to bottom: suppress ∥ capture → restrict → rotate → disable, each
// stage behind its gate, steered by verified operators, reversible by rollback, continued as new
// before its history grows too long. Containments started before v3 replay on the frozen
// workflows/legacy/containment-v2.ts instead (see the patched() call at the top).
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import type { ContainmentActivities, FirstAttempt, FirstStep } from './contract';
import { containmentWorkflowId, dryRunWorkflowId, sameIdentity, shortHash } from './ids';
import type { LegacyContainmentInput, legacyContainmentV2 } from './legacy/containment-v2';
import { COMMAND_DESCRIPTION, IDENTITY_SIGNAL_DESCRIPTION, commandSignal, commandUpdate, identitySignal, policyQuery, stateQuery } from './messages';
import type { Policy } from './policy';
import type {
  ContainmentState,
  IdentitySignal,
  OperatorCommand,
  ActionRecord,
  ActionResult,
  EvidenceKind,
  EvidenceOutcome,
  LadderPosition,
  Principal,
  Receipt,
  StageName,
  StagePlan,
  SuppressionAction,
  Target,
  Waiting,
} from './schemas';
import { countAction, recordTimeToSuppress } from './metrics';
import { SA } from './search-attributes';
import { COMMAND_ROLES } from './roles';
import { securityEvents } from './transmit';
import { sharedPolicies, sharedSchemas } from './shared-schemas';

// Shared by every containment on this workflow thread (see shared-schemas.ts).
const schemas = sharedSchemas();
const { LADDER_POSITIONS, durationMs, describeIssues } = schemas;
const { evaluatePolicy } = sharedPolicies();

export const V3_PATCH = 'v3-trusted-control-plane';
/** v4: provider calls as local activities, evidence in one activity (see `provider` below). */
export const V4_PATCH = 'v4-local-provider-calls';
/** v5: one patch marker, evidence as a local activity beside suppression, suppression and its gate in one upsert. */
export const V5_PATCH = 'v5-one-task-to-park';
/** v6: the first step reads the policy and makes the first attempt at suppression, in one local activity. */
export const V6_PATCH = 'v6-suppress-with-the-policy';
/** v7: the first step also says who receives the revoked sessions' event; suppression's emit reads no list of its own. */
export const V7_PATCH = 'v7-receivers-with-the-policy';
/** v8: the first step also makes the first attempt at each kind of evidence, after its suppression attempts. */
export const V8_PATCH = 'v8-evidence-with-the-first-step';

/** Everything a run hands to the next through continue-as-new. */
export interface Carried {
  state: ContainmentState;
  policy: Policy;
  held: boolean;
  closing?: Closing;
  planVersion: number;
  gateSeq: number;
  /** Sealed commands already used on this containment, with their token's expiry (a captured command replays nothing). */
  seals: { seal: string; exp: number }[];
  /** Short hashes of every signal id seen, so a repeat stays a no-op however old. */
  seen: string[];
  /** Hostile signals that arrived while the containment closed: they start the next one. */
  pending: IdentitySignal[];
  retryStage?: StageName;
  /** v5: evidence in the task that suppresses, as the worker said at the first run (absent: yes). */
  evidenceInTask?: boolean;
  /** A human was asked to decide when the run before continued as new. */
  attention?: Attention;
  evidenceTaken: string[];
}

/** Why the ladder waits for a human: what "advance" then retries. */
type Attention = { kind: 'suppression'; failed: SuppressionAction[] } | { kind: 'stage' | 'gate'; stage: StageName } | { kind: 'rollback' };

export interface ContainmentInput {
  signal: IdentitySignal;
  dryRun?: boolean;
  /** A candidate policy to test against real identities: dry runs only. */
  candidatePolicy?: unknown;
  /** v2 callers sent their policy here; v3 refuses it unless the run is a dry run. */
  policy?: unknown;
  /** Benchmark comparison only: capture evidence first, then suppress (what most teams do today). */
  evidenceFirst?: boolean;
  /** Continue as new past this many history events (tests use a small number). */
  historyLimit?: number;
  carried?: Carried;
  /** Set when signals arrived while the previous containment of this identity closed. */
  follows?: { runId: string; closedReason: string; seen: string[] };
  /** Further signals that arrived during that close: they join this containment at once. */
  queued?: IdentitySignal[];
}

type Closing = { type: 'abort' | 'rollback'; by: string; reason: string };

const NON_RETRYABLE = ['IdentityNotFound', 'InvalidConfiguration', 'NotSupported', 'InvalidInput'];
const retry = { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s', nonRetryableErrorTypes: NON_RETRYABLE };
// Actions retry through a provider outage of several minutes before the containment asks for a human.
const act = proxyActivities<ContainmentActivities>({ startToCloseTimeout: '30s', scheduleToCloseTimeout: '10m', heartbeatTimeout: '10s', retry });
// Evidence is best effort beside suppression: fewer retries, and its failure never blocks the ladder.
const evidence = proxyActivities<ContainmentActivities>({ startToCloseTimeout: '2m', scheduleToCloseTimeout: '5m', retry: { ...retry, maximumAttempts: 5 } });
// Reading the approved policy and verifying a token are short and local to the worker.
const local = proxyLocalActivities<ContainmentActivities>({ startToCloseTimeout: '15s', retry: { ...retry, maximumAttempts: 3 } });
// v4: every provider call is a local activity. The worker runs it inside the workflow task that
// asked for it, so suppression reaches the provider without a round trip through the server's
// task queue, and a call costs one marker event instead of six events and a workflow task.
// The same retries (through an outage of minutes: past 2 s they back off on server timers, which
// also lets the task that scheduled evidence complete), the same idempotent provider calls, each
// call's own record. A worker that dies mid-task loses nothing: the next one re-runs the calls.
const provider = proxyLocalActivities<ContainmentActivities>({ startToCloseTimeout: '30s', scheduleToCloseTimeout: '10m', localRetryThreshold: '2s', retry });
// v4: evidence in one heartbeating activity (each kind retried inside it), off the critical path.
const evidenceSet = proxyActivities<ContainmentActivities>({ startToCloseTimeout: '5m', scheduleToCloseTimeout: '10m', heartbeatTimeout: '20s', retry: { ...retry, maximumAttempts: 3 } });
// v5: evidence as a local activity too, beside the suppression calls in the same workflow task,
// with the durable activity's timeouts and retries. Its round trip through the task queue
// (scheduled, started, completed, and one more workflow task) was a third of a containment's cost
// under a burst. The task that records suppression completes when evidence returns; evidence
// slower than 80% of the task timeout is cut into workflow-task heartbeats by the SDK.
const evidenceNow = proxyLocalActivities<ContainmentActivities>({ startToCloseTimeout: '5m', scheduleToCloseTimeout: '10m', localRetryThreshold: '2s', retry: { ...retry, maximumAttempts: 3 } });

const POSITION_OF: Record<StageName, LadderPosition> = { restrict: 'restricted', rotate: 'rotated', disable: 'disabled' };
/** Suppressions rollback can lift (revoked sessions and tokens stay revoked). */
const LIFTABLE: SuppressionAction[] = ['revoke-sessions', 'block-high-risk-apis', 'force-step-up'];
const CLOSED = ['aborted', 'rolled-back'];
/** Who may give which command (shared with the HTTP API, which refuses earlier). */
const MAY = COMMAND_ROLES;
/** Action records kept in state; older ones move to the evidence store by hash. */
const KEEP_ACTIONS = 60;
const KEEP_SIGNALS = 20;
const DEFAULT_HISTORY_LIMIT = 5000;

export async function containment(input: ContainmentInput): Promise<ContainmentState> {
  // The newest version is asked first, so a new containment records one patch marker, not two:
  // the SDK follows each marker with an upsert of TemporalChangeVersion, a visibility write on the
  // server. Older histories have no newer marker and replay on the path they were recorded with.
  const version = patched(V8_PATCH) ? 8 : patched(V7_PATCH) ? 7 : patched(V6_PATCH) ? 6 : patched(V5_PATCH) ? 5 : !patched(V3_PATCH) ? 2 : patched(V4_PATCH) ? 4 : 3;
  if (version === 2) {
    // Only histories recorded before v3 need it, so no new containment evaluates it (or, through it, its own copy of the schemas).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const legacy = (require('./legacy/containment-v2') as { legacyContainmentV2: typeof legacyContainmentV2 }).legacyContainmentV2;
    return legacy(input as unknown as LegacyContainmentInput);
  }
  // A cancellation request (the UI's "Request Cancellation", `temporal workflow cancel`) is refused:
  // it is recorded in the actions and the ladder goes on. It names no verified operator (Temporal
  // does not say who sent it), while stopping a containment is an "abort" that needs a lead's token;
  // honouring it would reopen the door the control plane closed, and would cut activities off in
  // flight, leaving a cut half-made. So the whole ladder and every handler run shielded from it.
  const cancelRequested = CancellationScope.current().cancelRequested;
  return CancellationScope.nonCancellable(() => containmentV3(input, cancelRequested, version));
}

async function containmentV3(input: ContainmentInput, cancelRequested: Promise<never>, version: 3 | 4 | 5 | 6 | 7 | 8): Promise<ContainmentState> {

  // ---- input: refused before any action ------------------------------------------------------
  const info = workflowInfo();
  // Containments recorded before v4 replay with remote provider calls and one activity per kind of evidence.
  const v4 = version >= 4;
  const v5 = version >= 5;
  const call = v4 ? provider : act;
  const parsed = schemas.IdentitySignal.safeParse(input.signal);
  if (!parsed.success) throw ApplicationFailure.nonRetryable(`invalid signal: ${describeIssues(parsed.error)}`, 'InvalidInput');
  const first = parsed.data;
  const dryRun = input.dryRun ?? false;
  const expectedId = dryRun ? dryRunWorkflowId(first) : containmentWorkflowId(first);
  if (info.workflowId !== expectedId) {
    throw ApplicationFailure.nonRetryable(`workflow id "${info.workflowId}" does not match the signal's identity: it must be "${expectedId}"`, 'InvalidInput');
  }
  if (!dryRun && (input.policy !== undefined || input.candidatePolicy !== undefined)) {
    throw ApplicationFailure.nonRetryable("a containment runs on the worker's approved policy; a caller may bring a policy only for a dry run", 'PolicyRefused');
  }
  const historyLimit = Math.min(Math.max(input.historyLimit ?? DEFAULT_HISTORY_LIMIT, 200), 9000);
  const target: Target = { provider: first.provider, identityId: first.identityId, kind: first.identityKind };
  /** The identity as activity and timer summaries name it in the UI's timeline (plain text there, not markdown). */
  const on = `${first.identityId} on ${first.provider}`;
  const now = () => new Date().toISOString();

  // ---- state: fresh, or carried from the run before ---------------------------------------------
  const carried = input.carried;
  // v6: a new containment's first step also makes the first attempt at suppression. Reading the
  // policy, then acting on it in a second local activity, cost a workflow activation on the
  // critical path, which under a burst waited its turn on the worker's workflow thread. Queued
  // signals (which may make the plan harsher) and the bench's evidence-first comparison take the
  // two steps as before.
  const firstTry = version >= 6 && !carried && !dryRun && !input.evidenceFirst && !input.queued?.length;
  const approved = carried
    ? undefined
    : firstTry
      ? await local.loadPolicyAndSuppress.executeWithOptions(
          { summary: version >= 8 ? `policy: load the worker's approved policy, suppress ${on} and capture its evidence` : `policy: load the worker's approved policy and suppress ${on}` },
          version >= 8 ? [first, info.workflowId, { evidence: true }] : [first, info.workflowId],
        )
      : await local.loadPolicy.executeWithOptions({ summary: dryRun ? 'policy: validate the candidate (dry run)' : "policy: load the worker's approved policy" }, [
          dryRun ? (input.candidatePolicy ?? input.policy) : undefined,
        ]);
  /** First attempts the first step made, taken by the first suppression in place of calls of its own. */
  const firstAttempts = new Map<SuppressionAction, FirstAttempt>(((approved as Partial<FirstStep> | undefined)?.attempts ?? []).map((x) => [x.action, x]));
  /** v8: evidence the first step captured after them, recorded by the first capture in place of taking it again. */
  const firstEvidence = (approved as Partial<FirstStep> | undefined)?.evidence ?? [];
  const policy: Policy = carried?.policy ?? approved!.policy;
  // v5 takes evidence in the task that suppresses unless the worker said otherwise (CORDON_EVIDENCE_IN_TASK).
  const evidenceInTask = v5 && (carried ? carried.evidenceInTask : approved!.evidenceInTask) !== false;
  const state: ContainmentState = carried?.state ?? {
    containmentId: info.workflowId,
    target,
    status: 'suppressing',
    position: 'new',
    plan: evaluatePolicy(policy, first, { dryRun }),
    policy: { version: approved!.version, sha256: approved!.sha256 },
    signals: [{ signalId: first.signalId, trigger: first.trigger, confidence: first.confidence, receivedAt: now() }],
    signalCount: 1,
    actions: [],
    evidence: [],
    archived: [],
    startedAt: now(),
    receipts: { suppressed: {}, ended: [] },
    run: 1,
    ...(input.follows ? { follows: { runId: input.follows.runId, closedReason: input.follows.closedReason } } : {}),
  };
  if (carried) state.run = (state.run ?? 1) + 1;
  const receipts = state.receipts;
  const liftReceipts: Record<string, Receipt> = (receipts.suppressed ??= {});
  let held = carried?.held ?? false;
  let closing: Closing | undefined = carried?.closing;
  let planVersion = carried?.planVersion ?? 0;
  let gateSeq = carried?.gateSeq ?? 0;
  let retryStage = carried?.retryStage;
  let attention = carried?.attention;
  let stageRunning = false;
  let inflight = 0; // suppressions started by joining signals, awaited before any undo
  let capturing = 0; // evidence captures running: continue-as-new waits for them
  let woken = 0; // bumped by every accepted command, so waits re-evaluate
  const seals = new Map((carried?.seals ?? []).map((j) => [j.seal, j.exp]));
  const seen = new Set([...(input.follows?.seen ?? []), ...(carried?.seen ?? []), shortHash(first.signalId)]);
  const pending: IdentitySignal[] = carried?.pending ?? [];
  const evidenceTaken = new Set(carried?.evidenceTaken ?? []);
  const suppressed = new Set(Object.keys(liftReceipts) as SuppressionAction[]);

  const record = (action: string, actor: string, outcome: ActionRecord['outcome'], detail: string, extra: Partial<ActionRecord> = {}) => {
    state.actions.push({ action, actor, outcome, detail, ...extra, at: extra.at ?? now() });
    if (!dryRun) countAction(target.provider, action, outcome);
  };
  // SETs to receivers, never on the critical path; v7 takes the first emit's receivers from the first step.
  const ssf = securityEvents({ target, dryRun, record, local: v4, known: version >= 7 ? (approved as Partial<FirstStep> | undefined)?.receivers : undefined });
  const ruleActor = () => `policy:${state.plan.policyVersion}/${state.plan.rule}`;
  const failureText = (err: unknown) => (err instanceof ActivityFailure && err.cause ? err.cause.message : (err as Error).message);

  // ---- what operators see -------------------------------------------------------------------
  const standingOf = () => `${state.position}/${state.status}/${state.waiting?.for ?? 'none'}`;
  let standing = carried ? standingOf() : undefined;
  state.since ??= state.startedAt;
  let doing: string | undefined; // the step running now, for the headline
  const upserted = new Map<string, string | number | boolean | null>();
  /**
   * Search attributes and details follow the state. `passing`: a step that runs now within this
   * workflow task (v4's local activities) — the attributes would be overwritten before anyone saw
   * them, and each upsert is a history event, so only the details change.
   */
  const publishNow = (o: { passing?: boolean } = {}) => {
    if (o.passing && v4) return void setCurrentDetails(details());
    if (standing !== undefined && standingOf() !== standing) state.since = now();
    standing = standingOf();
    // Upsert only what changed: each upsert is a history event, details are not.
    const deadline = state.waiting?.deadline;
    const wanted: SearchAttributeUpdatePair[] = [
      { key: SA.stage, value: state.position },
      { key: SA.status, value: state.status },
      { key: SA.waitingFor, value: CLOSED.includes(state.status) ? 'none' : (state.waiting?.for ?? 'none') },
      { key: SA.stageSince, value: new Date(state.since!) },
      { key: SA.nextDeadline, value: deadline ? new Date(deadline) : null },
      { key: SA.dryRun, value: dryRun },
    ];
    const plain = (v: SearchAttributeUpdatePair['value']) => (v instanceof Date ? v.toISOString() : Array.isArray(v) ? v.join(',') : v);
    const changed = wanted.filter((p) => upserted.get(p.key.name) !== plain(p.value));
    if (changed.length) {
      upsertSearchAttributes(changed);
      for (const p of changed) upserted.set(p.key.name, plain(p.value));
    }
    setCurrentDetails(details());
  };
  // v5: a change that the ladder publishes again at once (suppression done, then "suppressed",
  // then the gate it parks at, all in one task) is marked `soon`: only the details change, and the
  // next publish upserts it with the rest, one visibility write where v4 made three. The ladder
  // publishes before every wait and the close always does, so nothing is left unpublished.
  // Deferred in code, never "at the end of the activation": replay may batch local-activity
  // results into fewer activations than the original run had, and commands must keep their order.
  const publish = (o: { passing?: boolean; soon?: boolean } = {}) => (v5 && o.soon ? setCurrentDetails(details()) : publishNow(o));

  /** "14:05:10 UTC", with the date when it is not today (workflow time). */
  const clock = (iso: string) => `${iso.slice(0, 10) === now().slice(0, 10) ? '' : `${iso.slice(0, 10)} `}${iso.slice(11, 19)} UTC`;
  /** "in 4m" from now (workflow time; details are rewritten on every change, not every minute). */
  const until = (iso: string) => {
    const ms = Date.parse(iso) - Date.now();
    return ms <= 0 ? 'due now' : `in ${span(ms)}`;
  };

  /** One line: the stage, how it stands and since when, what happens next and when. */
  const headline = (): string => {
    const w = state.waiting;
    const who = (n: number) => (n > 1 ? `${n} different responders or leads` : 'a responder or lead');
    const gate = w ? ` (gate \`${w.gate}\`)` : '';
    const how =
      state.status === 'needs-attention' ? 'needs attention'
      : w?.for === 'approval' ? 'waiting for approval'
      : w?.for === 'dependencies' ? 'waiting for dependents to go'
      : w?.for === 'hold' ? 'on hold'
      : state.status;
    let next: string;
    if (CLOSED.includes(state.status) || (!w && state.closedReason)) next = md(state.closedReason ?? state.status);
    else if (closing) next = `${closing.type} requested by ${md(closing.by)}: in progress`;
    else if (!w) next = doing ? `running ${doing} now` : 'working';
    else if (w.for === 'timer') next = `next: ${w.stage} at ${clock(w.deadline!)}, ${until(w.deadline!)}${gate}; "advance" runs it now`;
    else if (w.for === 'approval') {
      const got = w.approvedBy ?? [];
      const so = got.length ? `; approved so far by ${got.map((a) => md(a.username)).join(', ')} (${got.length} of ${w.approversNeeded})` : '';
      next = `next: ${w.stage} once approved by ${who(w.approversNeeded ?? 1)}${gate}${so}`;
    } else if (w.for === 'dependencies') next = `next: ${w.stage} once no dependents remain, or needs attention at ${clock(w.deadline!)}, ${until(w.deadline!)}${gate}`;
    else if (w.for === 'hold') next = `next: ${w.stage ?? 'the ladder'} after "resume"${gate}`;
    else if (w.for === 'attention') next = `${md(w.detail.slice(0, 160))}${gate}`;
    else next = w.deadline ? `${state.status === 'watching' ? 'watching' : 'contained'}: open for rollback until ${clock(w.deadline)}, ${until(w.deadline)}, then closes` : md(w.detail);
    return `${dryRun ? 'DRY RUN · ' : ''}**${state.position}** · ${how} since ${clock(state.since!)} · ${next}`;
  };

  /** Current details: the headline, then the plan and evidence, then the last actions in time order, with reasons. */
  const details = (): string => {
    // Code spans show backslashes literally: only text that cannot hold a backtick goes in one
    // (rule names, hashes, gate ids); everything else is escaped with md().
    const facts = [
      `plan \`${state.plan.rule}\``,
      `policy ${md(state.policy?.version ?? '?')} \`${(state.policy?.sha256 ?? '').slice(0, 12)}\``,
      `${state.signalCount ?? state.signals.length} signal(s)`,
    ];
    const newest = state.evidence.at(-1);
    if (newest) facts.push(`${state.evidence.length} evidence artifact(s), newest \`cordon evidence ${newest.sha256.slice(0, 12)}\``);
    const rb = state.rollbackApprovals?.length ? `\n\n**Rollback approved by** ${state.rollbackApprovals.map((a) => md(a.username)).join(', ')} (${state.rollbackApprovals.length} of ${state.plan.rollback.approvers})` : '';
    const last = [...state.actions]
      .map((a, i) => ({ a, i }))
      .sort((x, y) => x.a.at.localeCompare(y.a.at) || x.i - y.i)
      .slice(-5)
      .map(({ a }) => {
        // One line each in the UI's panel (it clips, it does not scroll): hashes cut to 12 digits, the policy named once above.
        const text = a.detail.replace(/\b([0-9a-f]{12})[0-9a-f]{52}\b/g, '$1');
        const actor = a.actor.startsWith('policy:') ? 'policy' : a.actor.slice(0, 24);
        return `- ${a.at.slice(11, 19)} ${md(a.action)} **${a.outcome}** (${md(actor)}): ${md(text.slice(0, 64))}${text.length > 64 ? '…' : ''}`;
      })
      .join('\n');
    // The UI (2.42) sizes its details frame to the body without the body's margins, so the last
    // ~15px are clipped: a trailing paragraph of one no-break space takes the clip, not an action.
    // Who still depends on the identity is what an operator checks before clearing the gate.
    const deps = state.waiting?.for === 'dependencies' ? `\n\n${md(state.waiting.detail.slice(0, 240))}` : '';
    return `${headline()}${deps}\n\n${facts.join(' · ')}${rb}\n\n**Last actions** (UTC, newest last; all of them: \`cordon describe\`)\n\n${last}\n\n\u00a0`;
  };

  cancelRequested.catch((err: unknown) => {
    if (!isCancellation(err)) return;
    record(
      'cancel',
      'unknown (Temporal does not say who)',
      'rejected',
      `cancellation requested from the Temporal UI or API: refused, the containment goes on. A cancellation carries no verified operator; to stop it, a lead sends "abort" (cordon command ${info.workflowId} abort --reason …)`,
    );
    publish();
  });

  /** Starts waiting for something; each wait gets a fresh gate id that an advance must name. */
  const wait = (w: Omit<Waiting, 'gate' | 'since'>, reuse?: Waiting): Waiting => {
    state.waiting = reuse && reuse.for === w.for && reuse.stage === w.stage ? { ...reuse, ...w, gate: reuse.gate, since: reuse.since } : { ...w, gate: `${w.stage ?? w.for}#${++gateSeq}`, since: now() };
    publish();
    return state.waiting;
  };
  const stopWaiting = () => {
    state.waiting = undefined;
  };

  // ---- operator commands: parse → verify → authorize → apply, every refusal recorded ------------
  const nextStage = (): StagePlan | undefined => {
    const reached = LADDER_POSITIONS.indexOf(state.position);
    return state.plan.stages.find((s) => LADDER_POSITIONS.indexOf(POSITION_OF[s.stage]) > reached);
  };

  /** Why this principal's command cannot be taken now, or undefined when it can. */
  const refusal = (c: OperatorCommand, p: Principal): string | undefined => {
    if (!MAY[c.type].some((r) => p.roles.includes(r))) return `${c.type} needs the role ${MAY[c.type].join(' or ')}; ${p.username} has ${p.roles.join(', ') || 'no Cordon role'}`;
    if (CLOSED.includes(state.status)) return `the containment is closed (${state.status})`;
    if (closing) return `the containment is already closing (${closing.type} requested by ${closing.by})`;
    const w = state.waiting;
    switch (c.type) {
      case 'advance':
      case 'dependencies-cleared': {
        if (!w || w.for === 'none') return stageRunning ? 'a stage is running: nothing is waiting for an advance' : 'nothing is waiting for an advance';
        if (!c.gate) return `${c.type} must name the gate it answers: "${w.gate}" is waiting (see describe)`;
        if (c.gate !== w.gate) return `gate "${c.gate}" is no longer waiting: "${w.gate}" is (a repeated or late command cannot pass a later gate)`;
        if (w.for === 'hold') return 'the containment is on hold: resume it first';
        if (attention?.kind === 'rollback') return 'a rollback failed part-way: "rollback" retries it, "abort" abandons it';
        if (c.type === 'dependencies-cleared' && w.for !== 'dependencies') return 'no dependency check is waiting';
        if (w.approvedBy?.some((a) => a.sub === p.sub)) return `${p.username} already approved gate ${w.gate}: a different principal must give approval ${w.approvedBy.length + 1} of ${w.approversNeeded}`;
        return undefined;
      }
      case 'hold':
        if (held) return 'the containment is already on hold';
        if (!nextStage()) return `nothing to hold: the ladder is complete at "${state.position}"`;
        return undefined;
      case 'resume':
        return held ? undefined : 'the containment is not on hold';
      case 'abort':
        return undefined;
      case 'rollback':
        if (state.rollbackApprovals?.some((a) => a.sub === p.sub)) return `${p.username} already approved this rollback: a different lead must approve`;
        return undefined;
    }
  };

  const rollbackApproversNeeded = () =>
    LADDER_POSITIONS.indexOf(state.position) > LADDER_POSITIONS.indexOf(state.plan.rollback.beyond) ? state.plan.rollback.approvers : 1;

  const apply = (c: OperatorCommand, p: Principal): string => {
    const who = { iss: p.iss, sub: p.sub, username: p.username, jti: p.jti, exp: p.exp };
    const approval = { sub: p.sub, username: p.username, at: now() };
    woken++;
    switch (c.type) {
      case 'advance':
      case 'dependencies-cleared': {
        const w = state.waiting!;
        w.approvedBy = [...(w.approvedBy ?? []), approval];
        const needed = w.approversNeeded ?? 1;
        record(`command:${c.type}`, p.username, 'done', `${c.reason} (gate ${w.gate}${needed > 1 ? `, approval ${w.approvedBy.length} of ${needed}` : ''})`, { principal: who });
        break;
      }
      case 'hold':
        held = true;
        if (state.status === 'active') state.status = 'held';
        record('command:hold', p.username, 'done', c.reason, { principal: who });
        break;
      case 'resume':
        held = false;
        if (state.status === 'held') state.status = 'active';
        record('command:resume', p.username, 'done', c.reason, { principal: who });
        break;
      case 'abort':
        closing = { type: 'abort', by: p.username, reason: c.reason };
        record('command:abort', p.username, 'done', c.reason, { principal: who });
        break;
      case 'rollback': {
        state.rollbackApprovals = [...(state.rollbackApprovals ?? []), approval];
        const needed = rollbackApproversNeeded();
        const enough = state.rollbackApprovals.length >= needed;
        if (enough) closing = { type: 'rollback', by: state.rollbackApprovals.map((a) => a.username).join(' + '), reason: c.reason };
        record('command:rollback', p.username, 'done', `${c.reason}${needed > 1 ? ` (approval ${state.rollbackApprovals.length} of ${needed}${enough ? '' : ': a second lead must approve'})` : ''}`, { principal: who });
        break;
      }
    }
    publish();
    return p.username;
  };

  const reject = (type: string, actor: string, why: string, principal?: Principal): never => {
    record(`command:${type}`, actor, 'rejected', why, principal ? { principal: { iss: principal.iss, sub: principal.sub, username: principal.username, jti: principal.jti, exp: principal.exp } } : {});
    publish();
    throw ApplicationFailure.nonRetryable(`${type} rejected: ${why}`, 'CommandRejected');
  };

  async function handleCommand(raw: unknown): Promise<{ status: ContainmentState['status']; accepted: string; by: string }> {
    const cmd = schemas.OperatorCommand.safeParse(raw);
    const type = typeof (raw as { type?: unknown })?.type === 'string' ? String((raw as { type: string }).type).slice(0, 40) : 'unknown';
    if (!cmd.success) return reject(type, 'unauthenticated', `invalid command: ${describeIssues(cmd.error)}`);
    const c = cmd.data;
    if (!c.token) return reject(c.type, 'unauthenticated', 'no token: every command carries the operator\'s sealed OIDC token (cordon command, or --print for the UI)');
    let verdict;
    try {
      verdict = await local.verifyOperator.executeWithOptions({ summary: `verify: the token of a ${c.type} command` }, [c.token, { workflowId: info.workflowId, type: c.type, gate: c.gate, reason: c.reason }]);
    } catch (err) {
      return reject(c.type, 'unauthenticated', `the token could not be verified now (${failureText(err)}): try again`);
    }
    if (!verdict.ok) return reject(c.type, verdict.claimed ? `unverified (claims ${verdict.claimed})` : 'unauthenticated', verdict.reason);
    const p = verdict.principal;
    if (seals.has(verdict.seal)) return reject(c.type, p.username, 'this sealed command was already used on this containment: a captured command cannot be replayed', p);
    seals.set(verdict.seal, p.exp);
    const why = refusal(c, p);
    if (why) return reject(c.type, p.username, why, p);
    const by = apply(c, p);
    return { status: state.status, accepted: c.type, by };
  }

  setHandler(stateQuery, () => state);
  setHandler(policyQuery, () => ({ version: state.policy!.version, sha256: state.policy!.sha256, policy }));
  // Handlers run in the workflow's root scope: shielded too, so a cancellation request cannot cut them off.
  const shielded = <T>(fn: () => Promise<T>) => CancellationScope.nonCancellable(fn);
  setHandler(commandUpdate, (raw) => shielded(() => handleCommand(raw)), { description: COMMAND_DESCRIPTION });
  setHandler(
    commandSignal,
    async (raw) => {
      // A signal cannot answer; its refusal is in the containment's actions (recorded by handleCommand).
      try {
        await shielded(() => handleCommand(raw));
      } catch (err) {
        log.warn('command signal refused', { error: (err as Error).message });
      }
    },
    { description: COMMAND_DESCRIPTION },
  );

  // ---- joining signals: a repeat is a no-op, a harsher one escalates ---------------------------
  setHandler(
    identitySignal,
    (raw) => {
      const p = schemas.IdentitySignal.safeParse(raw);
      if (!p.success) return log.warn('identity signal rejected', { error: describeIssues(p.error) });
      const s = p.data;
      if (!sameIdentity(s, target)) return log.warn('identity signal for another identity ignored');
      const h = shortHash(s.signalId);
      // A repeat is a no-op by design. Every containment gets one (the signal it was started with
      // comes again with the start), answered here without a cancellation scope and its promises.
      if (seen.has(h)) return;
      seen.add(h);
      return shielded(() => joinSignal(s));
    },
    { description: IDENTITY_SIGNAL_DESCRIPTION },
  );

  async function joinSignal(s: IdentitySignal): Promise<void> {
    if (dryRun) return;
    if (CLOSED.includes(state.status) || closing) {
      // Never dropped: it starts the next containment of this identity once this one has closed.
      pending.push(s);
      record('signal', `signal:${s.signalId}`, 'skipped', `arrived while closing (${s.trigger}, confidence ${s.confidence}): starts a new containment after the close`);
      return publish();
    }
    state.signals = [...state.signals, { signalId: s.signalId, trigger: s.trigger, confidence: s.confidence, receivedAt: now() }].slice(-KEEP_SIGNALS);
    state.signalCount = (state.signalCount ?? state.signals.length) + 1;
    const plan = evaluatePolicy(policy, s, { dryRun });
    if (plan.severity <= state.plan.severity) return;
    record('escalate', `policy:${plan.policyVersion}/${plan.rule}`, 'done', `signal ${s.signalId} (${s.trigger}, confidence ${s.confidence}) escalates ${state.plan.rule} → ${plan.rule}`);
    state.plan = plan;
    planVersion++;
    upsertSearchAttributes([
      { key: SA.trigger, value: s.trigger },
      { key: SA.risk, value: Math.max(s.riskScore, first.riskScore) },
    ]);
    publish();
    inflight++;
    try {
      await Promise.all([runSuppression(plan.suppress.filter((a) => !suppressed.has(a)), s), captureAll()]);
    } finally {
      inflight--;
    }
  }

  // ---- steps --------------------------------------------------------------------------------
  /** Runs suppression actions in parallel; returns the actions that still failed after retries. */
  async function runSuppression(actions: SuppressionAction[], s: IdentitySignal, acknowledged: string[] = [], o: { soon?: boolean } = {}): Promise<SuppressionAction[]> {
    for (const a of actions) suppressed.add(a);
    // Time to suppress counts from the workflow's start for its first signal, from arrival for a joining one.
    const since = s.signalId === first.signalId && !carried ? info.startTime.getTime() : Date.now();
    const failed: SuppressionAction[] = [];
    await Promise.all(
      actions.map(async (a) => {
        if (dryRun) return record(`suppress:${a}`, ruleActor(), 'would-do', `would ${a} for ${target.identityId}`);
        const tried = firstAttempts.get(a);
        firstAttempts.delete(a);
        try {
          // A first attempt that failed for good is this action's failure; one that may pass is tried again, with retries.
          if (tried && 'error' in tried && !tried.retry) throw new Error(tried.error);
          const r = tried && 'result' in tried ? tried.result : await call.suppress.executeWithOptions({ summary: `suppress: ${a} on ${on}` }, [target, a, s.scope, state.containmentId]);
          liftReceipts[a] = r.receipt ?? liftReceipts[a] ?? {};
          if (r.ended?.length) receipts.ended = [...(receipts.ended ?? []), ...r.ended].slice(-50);
          if (r.evidence) state.evidence.push(r.evidence);
          record(`suppress:${a}`, ruleActor(), r.changed ? 'done' : 'unchanged', r.detail, { at: r.at });
          if (r.at) recordTimeToSuppress(target.provider, a, Date.parse(r.at) - since);
          if (a === 'revoke-sessions') ssf.emit('session-revoked');
          acknowledged.push(r.at ?? now());
        } catch (err) {
          suppressed.delete(a);
          failed.push(a);
          record(`suppress:${a}`, ruleActor(), 'failed', failureText(err));
        }
      }),
    );
    publish({ soon: o.soon });
    return failed;
  }

  /** Captures the evidence the plan asks for that is not captured yet (a joining plan may ask for more). */
  async function captureAll(): Promise<void> {
    for (const o of firstEvidence.splice(0)) {
      if (!state.plan.evidence.includes(o.kind) || evidenceTaken.has(o.kind)) continue;
      evidenceTaken.add(o.kind);
      recordEvidence(o);
    }
    const kinds = state.plan.evidence.filter((k) => !evidenceTaken.has(k));
    kinds.forEach((k) => evidenceTaken.add(k));
    capturing++;
    if (v4 && !dryRun) {
      try {
        if (kinds.length) await captureSet(kinds);
      } finally {
        capturing--;
      }
      return;
    }
    await Promise.all(
      kinds.map(async (kind) => {
        if (dryRun) return record(`evidence:${kind}`, ruleActor(), 'would-do', `would capture ${kind}`);
        try {
          const ref = await evidence.captureEvidence.executeWithOptions({ summary: `evidence: ${kind} of ${on}` }, [state.containmentId, target, kind]);
          state.evidence.push(ref);
          record(`evidence:${kind}`, ruleActor(), 'done', `${ref.bytes} bytes, sha256 ${ref.sha256}`);
        } catch (err) {
          record(`evidence:${kind}`, ruleActor(), 'failed', failureText(err)); // recorded; never undoes suppression
        }
      }),
    ).finally(() => capturing--);
  }

  /** v4: every kind in one activity; each kind still gets its own record, with its size, hash and time. */
  async function captureSet(kinds: EvidenceKind[]): Promise<void> {
    try {
      const outcomes = await (evidenceInTask ? evidenceNow : evidenceSet).captureEvidenceSet.executeWithOptions({ summary: `evidence: ${kinds.join(', ')} of ${on}` }, [state.containmentId, target, kinds]);
      for (const o of outcomes) recordEvidence(o);
    } catch (err) {
      for (const kind of kinds) record(`evidence:${kind}`, ruleActor(), 'failed', failureText(err)); // recorded; never undoes suppression
    }
  }

  /** One kind's record, with its size, hash and time, or why it was not captured. */
  function recordEvidence(o: EvidenceOutcome): void {
    const tries = o.attempts > 1 ? `, ${o.attempts} attempts` : '';
    if (o.ref) {
      state.evidence.push(o.ref);
      record(`evidence:${o.kind}`, ruleActor(), 'done', `${o.ref.bytes} bytes, sha256 ${o.ref.sha256} (${o.ms} ms${tries})`);
    } else record(`evidence:${o.kind}`, ruleActor(), 'failed', `${o.error ?? 'not captured'}${tries ? ` (${o.attempts} attempts)` : ''}`);
  }

  async function runStage(sp: StagePlan, actor: string): Promise<void> {
    stageRunning = true;
    try {
      const before = await call.inspectIdentity.executeWithOptions({ summary: `inspect: ${on} before ${sp.stage}` }, [target]);
      if (!before.exists) throw ApplicationFailure.nonRetryable(`identity ${target.identityId} no longer exists`, 'IdentityNotFound');
      switch (sp.stage) {
        case 'restrict': {
          const keep = sp.keep ?? [];
          if (dryRun) return record('restrict', actor, 'would-do', `would narrow grants [${before.grants.join(', ')}] to [${keep.join(', ')}] and end ${before.sessions} session(s)`);
          receipts.grantsBefore ??= before.grants;
          const r = await call.restrictGrants.executeWithOptions({ summary: `restrict: narrow ${on} to ${keep.length} grant(s)` }, [target, keep]);
          const after = await call.inspectIdentity.executeWithOptions({ summary: `inspect: ${on} after restrict` }, [target]);
          return record('restrict', actor, r.changed ? 'done' : 'unchanged', r.detail, { before: before.grants, after: after.grants, at: r.at });
        }
        case 'rotate': {
          if (dryRun) return record('rotate', actor, 'would-do', 'would issue a new credential to the secret sink and retire the old one');
          // The key is the containment's first run: a retry, on any worker or run, sets the same secret.
          // With no login block of ours, an empty receipt tells the provider to leave logins as they are.
          const ref = await call.rotateCredential.executeWithOptions({ summary: `rotate: new credential for ${on}` }, [target, `${info.workflowId}/${info.firstExecutionRunId}/rotate`, liftReceipts['revoke-sessions'] ?? {}]);
          receipts.rotated = ref;
          ssf.emit('credential-change');
          return record('rotate', actor, 'done', `new credential in ${ref.sink} as ${ref.ref} (fingerprint ${ref.fingerprint})`);
        }
        case 'disable': {
          if (dryRun) return record('disable', actor, 'would-do', `would disable (enabled now: ${before.enabled}) and end ${before.sessions} session(s)`);
          receipts.enabledBefore ??= before.enabled;
          const r = await call.setEnabled.executeWithOptions({ summary: `disable: ${on}` }, [target, false]);
          ssf.emit('account-disabled');
          return record('disable', actor, r.changed ? 'done' : 'unchanged', r.detail, { before: { enabled: before.enabled }, after: { enabled: false }, at: r.at });
        }
      }
    } finally {
      stageRunning = false;
    }
  }

  // ---- long lives: bounded state, continue-as-new at a quiet moment ------------------------------
  const tooLong = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > historyLimit;
  const archiveDue = () => state.actions.length > KEEP_ACTIONS;

  /** Called wherever the ladder waits: archives old records and continues as new when history is long. */
  async function checkpoint(): Promise<void> {
    if (archiveDue() && !dryRun) {
      const old = state.actions.splice(0, state.actions.length - KEEP_ACTIONS / 2);
      try {
        state.archived = [...(state.archived ?? []), await evidence.archiveRecords.executeWithOptions({ summary: `archive: ${old.length} older action records` }, [state.containmentId, old])];
      } catch (err) {
        state.actions.unshift(...old); // kept in state rather than lost
        log.warn('archiving old actions failed', { error: failureText(err) });
      }
    }
    if (!tooLong()) return;
    await ssf.settled();
    await condition(() => allHandlersFinished() && inflight === 0 && capturing === 0);
    const next: ContainmentInput = {
      signal: first,
      dryRun,
      historyLimit: input.historyLimit,
      carried: {
        state,
        policy,
        held,
        closing,
        planVersion,
        gateSeq,
        // An expired token fails verification anyway: its seals need no remembering.
        seals: [...seals].filter(([, exp]) => exp * 1000 > Date.now()).map(([seal, exp]) => ({ seal, exp })),
        seen: [...seen],
        pending,
        retryStage,
        attention,
        evidenceTaken: [...evidenceTaken],
        evidenceInTask,
      },
    };
    await continueAsNew<typeof containment>(next);
  }

  /** Waits until `done` or `timeoutMs`, waking to archive or continue as new on the way; `summary` labels the timer in the UI. */
  async function waitFor(done: () => boolean, timeoutMs?: number, summary?: string): Promise<boolean> {
    const until = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    for (;;) {
      await checkpoint();
      if (done()) return true;
      const left = until === undefined ? undefined : until - Date.now();
      if (left !== undefined && left <= 0) return false;
      const seenWoken = woken;
      const wake = () => done() || tooLong() || archiveDue() || woken !== seenWoken;
      if (left === undefined) {
        await condition(wake);
        continue;
      }
      if (!(await condition(wake, left, { summary: summary ?? 'wait' }))) return done();
    }
  }

  // ---- gates ----------------------------------------------------------------------------------
  /** Parks the containment until an operator retries (advance) or closes it. retry: run the failed step now. */
  async function needsAttention(why: string, a: Attention): Promise<{ retry: boolean; actor: string }> {
    attention = a;
    state.status = 'needs-attention';
    const stage = 'stage' in a ? a.stage : undefined;
    wait({ for: 'attention', stage, detail: `${why}; "advance" retries now, "abort" or "rollback" closes`, approversNeeded: 1, approvedBy: [] }, state.waiting);
    await waitFor(() => closing !== undefined || (state.waiting?.approvedBy?.length ?? 0) >= 1);
    const by = state.waiting?.approvedBy?.[0]?.username ?? 'operator';
    stopWaiting();
    attention = undefined;
    state.status = held ? 'held' : 'active';
    return { retry: closing === undefined, actor: by };
  }

  /** Waits at a stage's gate until it passes, the plan changes (escalation) or closing begins. */
  async function passGate(sp: StagePlan): Promise<{ go: true; actor: string } | { go: false }> {
    const gate = sp.gate;
    if (dryRun) {
      record(`gate:${sp.stage}`, ruleActor(), 'would-do', `would wait for ${gate.type === 'timer' ? `a ${gate.after} timer` : gate.type}`);
      return { go: true, actor: ruleActor() };
    }
    const version = planVersion;
    const kind = gate.type === 'timer' ? 'timer' : gate.type === 'approval' ? 'approval' : 'dependencies';
    const needed = gate.type === 'approval' ? gate.approvers : 1;
    // A gate carried across continue-as-new keeps its id, deadline and approvals.
    const resumed = state.waiting?.stage === sp.stage && state.waiting.for !== 'attention' ? state.waiting : undefined;
    const deadline =
      resumed?.deadline ??
      (gate.type === 'timer' ? new Date(Date.now() + durationMs(gate.after)).toISOString() : gate.type === 'dependency-check' ? new Date(Date.now() + durationMs(gate.maxWait)).toISOString() : undefined);
    const detail =
      gate.type === 'timer'
        ? `${sp.stage} at ${deadline} (timer ${gate.after}); "advance" runs it now`
        : gate.type === 'approval'
          ? `approval to ${sp.stage} by ${needed > 1 ? `${needed} different responders or leads` : 'a responder or lead'}: send "advance"`
          : `dependency check before ${sp.stage}`;
    const open = () => wait({ for: kind, stage: sp.stage, deadline, detail, approversNeeded: needed, approvedBy: [] }, resumed);
    open();
    const approvals = () => state.waiting?.approvedBy ?? [];
    const interrupted = () => closing !== undefined || planVersion !== version || held || approvals().length >= needed;
    for (;;) {
      if (closing || planVersion !== version) return { go: false };
      if (approvals().length >= needed) return { go: true, actor: approvals().map((a) => a.username).join(' + ') };
      if (held) {
        // Same gate, same approvals and deadline: hold only stops the ladder from passing it.
        state.waiting = { ...state.waiting!, for: 'hold', detail: `on hold before ${sp.stage}: "resume" continues` };
        publish();
        await waitFor(() => !held || closing !== undefined || planVersion !== version);
        state.waiting = { ...state.waiting, for: kind, detail };
        publish();
        continue;
      }
      if (gate.type === 'timer') {
        if (Date.parse(deadline!) <= Date.now()) return { go: true, actor: ruleActor() };
        await waitFor(interrupted, Date.parse(deadline!) - Date.now(), `gate: ${sp.stage} after ${gate.after}`);
      } else if (gate.type === 'approval') {
        await waitFor(interrupted);
      } else {
        let deps;
        try {
          deps = await call.findDependents.executeWithOptions({ summary: `gate: who still uses ${on} before ${sp.stage}` }, [target, receipts.ended ?? []]);
        } catch (err) {
          // The check itself failed: a human decides; "advance" retries the check.
          record(`gate:${sp.stage}`, ruleActor(), 'failed', `dependency check failed: ${failureText(err)}`);
          const r = await needsAttention(`dependency check before ${sp.stage} failed: ${failureText(err)}`, { kind: 'gate', stage: sp.stage });
          if (!r.retry) return { go: false };
          open();
          continue;
        }
        if (deps.length === 0) return { go: true, actor: `${ruleActor()} (no dependents)` };
        if (Date.parse(deadline!) <= Date.now()) {
          const r = await needsAttention(`${deps.length} dependent(s) still use ${target.identityId} after the maximum wait of ${gate.maxWait}: "advance" runs ${sp.stage} anyway`, { kind: 'stage', stage: sp.stage });
          return r.retry ? { go: true, actor: r.actor } : { go: false };
        }
        const names = deps.map((d) => `${d.name}${d.address ? ` (${d.address})` : ''}`).join(', ');
        state.waiting = { ...state.waiting!, detail: `${deps.length} dependent(s) still use ${target.identityId}: ${names.slice(0, 400)}; "dependencies-cleared" or "advance" passes, next check in ${gate.recheckEvery}` };
        publish();
        await waitFor(interrupted, Math.min(durationMs(gate.recheckEvery), Math.max(1, Date.parse(deadline!) - Date.now())), `gate: check dependents again before ${sp.stage} (every ${gate.recheckEvery})`);
      }
    }
  }

  /** Walks the ladder until it is complete or closing is requested. A failed stage asks for a human. */
  async function climb(): Promise<void> {
    for (let sp = nextStage(); sp && !closing; sp = nextStage()) {
      let actor: string | undefined;
      if (attention && 'stage' in attention && attention.stage === sp.stage) {
        // Carried across continue-as-new while this stage waited for a human: a failed stage runs
        // when answered, a failed dependency check is re-run by its gate.
        const carriedKind = attention.kind;
        const r = await needsAttention(state.waiting?.detail.replace(/; "advance" retries.*$/, '') ?? `${sp.stage} needs attention`, attention);
        if (!r.retry) continue;
        if (carriedKind === 'stage') actor = r.actor;
      }
      if (retryStage === sp.stage) {
        actor = [...state.actions].reverse().find((a) => a.action === 'command:advance' && a.outcome === 'done')?.actor ?? 'operator';
        retryStage = undefined;
      }
      if (!actor) {
        state.status = held ? 'held' : 'active';
        const gate = await passGate(sp);
        stopWaiting();
        if (!gate.go) continue;
        actor = gate.actor;
      }
      state.status = 'active';
      doing = sp.stage;
      publish({ passing: true });
      try {
        await runStage(sp, actor);
        state.position = POSITION_OF[sp.stage];
        doing = undefined;
        publish();
      } catch (err) {
        doing = undefined;
        record(sp.stage, actor, 'failed', failureText(err));
        const r = await needsAttention(`${sp.stage} failed: ${failureText(err)}`, { kind: 'stage', stage: sp.stage });
        if (r.retry) retryStage = sp.stage; // "advance" retries the failed step now, not its gate
      }
    }
  }

  // ---- rollback: undo in reverse, retried until it succeeds or a lead abandons it ----------------
  async function undo(action: string, by: string, run: () => Promise<ActionResult>, note = ''): Promise<boolean> {
    try {
      const r = await run();
      record(`rollback:${action}`, by, r.changed ? 'done' : 'unchanged', `${r.detail}${note}`, { at: r.at });
      return true;
    } catch (err) {
      record(`rollback:${action}`, by, 'failed', failureText(err));
      return false;
    }
  }

  /** Undoes completed steps in reverse; each step undone is remembered, so a retry redoes only the rest. */
  async function rollback(by: string): Promise<boolean> {
    if (dryRun) return record('rollback', by, 'would-do', 'would undo every completed step'), true;
    // A suppression still running from an escalation must land before its lift, never after.
    await condition(() => inflight === 0);
    const undone = new Set(receipts.undone ?? []);
    const step = async (name: string, needed: boolean, run: () => Promise<ActionResult>) => {
      if (!needed || undone.has(name)) return true;
      const ok = await undo(name, by, run);
      if (ok) undone.add(name);
      receipts.undone = [...undone];
      return ok;
    };
    let ok = await step('disable', receipts.enabledBefore !== undefined, () => call.setEnabled.executeWithOptions({ summary: `rollback: re-enable ${on}` }, [target, receipts.enabledBefore!]));
    ok =
      (await step('rotate', receipts.rotated !== undefined, async () => {
        const ref = await call.rotateCredential.executeWithOptions({ summary: `rollback: re-issue a credential for ${on}` }, [target, `${info.workflowId}/${info.firstExecutionRunId}/reissue`, liftReceipts['revoke-sessions'] ?? {}]);
        return { changed: true, detail: `a rotated secret cannot be un-rotated: re-issued to the owner in ${ref.sink} as ${ref.ref} (fingerprint ${ref.fingerprint})` };
      })) && ok;
    ok = (await step('restrict', receipts.grantsBefore !== undefined, () => call.restoreGrants.executeWithOptions({ summary: `rollback: restore the grants of ${on}` }, [target, receipts.grantsBefore!]))) && ok;
    const lifts = LIFTABLE.filter((a) => suppressed.has(a)).map((a) => step(`suppress:${a}`, true, () => call.liftSuppression.executeWithOptions({ summary: `rollback: lift ${a} on ${on}` }, [target, a, liftReceipts[a]])));
    for (const r of await Promise.all(lifts)) ok = r && ok;
    if (ok && state.plan.suppress.some((a) => a === 'revoke-sessions' || a === 'revoke-tokens')) {
      record('rollback:revocations', by, 'not-supported', 'revoked sessions and tokens stay revoked: the owner signs in again');
    }
    return ok;
  }

  // ---- the ladder -----------------------------------------------------------------------------
  if (!carried) {
    // Signals that arrived while the previous containment closed join at once: the harshest plan wins.
    for (const s of input.queued ?? []) {
      if (seen.has(shortHash(s.signalId)) || !sameIdentity(s, target)) continue;
      seen.add(shortHash(s.signalId));
      state.signals.push({ signalId: s.signalId, trigger: s.trigger, confidence: s.confidence, receivedAt: now() });
      state.signalCount = (state.signalCount ?? 1) + 1;
      const plan = evaluatePolicy(policy, s, { dryRun });
      if (plan.severity > state.plan.severity) state.plan = plan;
    }
  }
  if (!carried) doing = `suppression (${state.plan.suppress.join(', ') || 'nothing to revoke'})`;
  // The client set the first attributes at start (new, suppressing): nothing to upsert before suppression.
  publish({ passing: !carried });
  let capture: Promise<void> = Promise.resolve();
  if (!carried || attention?.kind === 'suppression') {
    // 1. Suppression and evidence start together; only suppression is awaited before the ladder.
    const acknowledged: string[] = [];
    let failed: SuppressionAction[] = attention?.kind === 'suppression' ? attention.failed : [];
    if (!carried) {
      // v5 asks for the suppression calls first, so the worker starts them before evidence's.
      const suppressing = v5 && !input.evidenceFirst ? runSuppression(state.plan.suppress, first, acknowledged, { soon: true }) : undefined;
      capture = captureAll();
      if (input.evidenceFirst) await capture;
      failed = await (suppressing ?? runSuppression(state.plan.suppress, first, acknowledged, { soon: true }));
      ssf.readAfresh(); // v7: the first step's receivers served this suppression only
    }
    while (failed.length && !closing) {
      const r = await needsAttention(`suppression failed after retries (${failed.join(', ')})`, { kind: 'suppression', failed });
      if (!r.retry) break;
      failed = await runSuppression(failed, first, acknowledged); // "advance" retries the failed actions now
    }
    doing = undefined;
    if (!failed.length) {
      // The provider's acknowledgement of the last action, not the (later) workflow task time.
      state.suppressedAt = acknowledged.sort().at(-1) ?? now();
      state.position = 'suppressed';
      state.status = 'active';
      publish({ soon: true }); // the gate or retention the ladder parks at next publishes it
    }
  }

  // 2..4. Restrict → rotate → disable, then stay open for rollback until the plan's retention ends.
  while (!closing && state.position !== 'new') {
    await climb();
    if (closing) break;
    state.status = state.plan.stages.length ? 'contained' : 'watching';
    if (dryRun) break; // a dry run closes once it has walked the ladder: nothing to retain
    const prior = state.waiting?.for === 'none' ? state.waiting : undefined;
    const deadline = prior?.deadline ?? new Date(Date.now() + durationMs(state.plan.retainFor)).toISOString();
    wait({ for: 'none', detail: `open for rollback until ${deadline}`, deadline }, prior);
    const version = planVersion;
    const woke = await waitFor(() => closing !== undefined || planVersion !== version, Math.max(0, Date.parse(deadline) - Date.now()), `retention: open for rollback until ${deadline.slice(0, 16).replace('T', ' ')} UTC`);
    stopWaiting();
    if (!woke) break;
  }

  // 5. Close: rollback (retried until it succeeds or a lead abandons it), abort, or retention over.
  while (closing?.type === 'rollback' || attention?.kind === 'rollback') {
    if (closing?.type === 'rollback') {
      const by = closing.by;
      if (await rollback(by)) {
        state.status = 'rolled-back';
        state.position = 'new';
        state.closedReason = `rolled back by ${by}: ${closing.reason}`;
        break;
      }
      // Half undone: stay open with the remaining receipts; "rollback" retries them, "abort" abandons them.
      closing = undefined;
      state.rollbackApprovals = [];
    }
    attention = { kind: 'rollback' };
    state.status = 'needs-attention';
    wait({ for: 'attention', detail: 'rollback failed part-way (see actions): "rollback" retries the remaining steps, "abort" abandons them with a reason' }, state.waiting);
    await waitFor(() => closing !== undefined);
    attention = undefined;
    stopWaiting();
  }
  const c = closing as Closing | undefined;
  if (c?.type === 'abort') {
    state.status = 'aborted';
    state.closedReason = `aborted by ${c.by}: ${c.reason}${receipts.undone ? ' (a rollback was abandoned part-way: its receipts stay in this record)' : ''}`;
  } else if (!c) {
    state.closedReason = dryRun ? 'dry run walked the whole ladder' : `retention of ${state.plan.retainFor} ended`;
  }
  stopWaiting();
  publish();
  await capture;
  await ssf.settled();
  await condition(() => allHandlersFinished() && inflight === 0);
  state.seen = [...seen]; // in the result only: a closed containment still recognises every signal it saw
  if (pending.length && !dryRun) {
    // A hostile signal arrived while this containment closed: the next containment starts from it.
    const [next, ...rest] = pending;
    await continueAsNew<typeof containment>({
      signal: next!,
      queued: rest,
      historyLimit: input.historyLimit,
      follows: { runId: info.runId, closedReason: state.closedReason ?? state.status, seen: [...seen] },
    });
  }
  return state;
}

/** Escapes text from providers and operators before it reaches the UI's markdown. */
function md(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, '\\$&').replace(/\s+/g, ' ');
}

/** A short span: "45s", "4m", "2h 5m", "3d 4h". */
function span(ms: number): string {
  const m = Math.round(ms / 60_000);
  if (ms < 60_000) return `${Math.max(1, Math.round(ms / 1000))}s`;
  if (m < 60) return `${m}m`;
  if (m < 24 * 60) return `${Math.floor(m / 60)}h${m % 60 ? ` ${m % 60}m` : ''}`;
  const h = Math.floor(m / 60);
  return `${Math.floor(h / 24)}d${h % 24 ? ` ${h % 24}h` : ''}`;
}
