// FROZEN: the ladder as it ran up to v2 (caller-supplied policy, self-declared `by`). Containments
// started on that code have no 'v3-trusted-control-plane' marker and replay here, unchanged;
// new containments never reach it. Do not edit: any change breaks their replay.
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ContainmentActivities } from '../contract';
import { identitySignal, stateQuery } from '../messages';
import { legacyCommandSignal as commandSignal, legacyCommandUpdate as commandUpdate } from './messages-v2';
import { Policy, evaluatePolicy } from '../policy';
import {
  type ActionResult,
  ContainmentState,
  IdentitySignal,
  LADDER_POSITIONS,
  LadderPosition,
  LegacyOperatorCommand as OperatorCommand,
  StageName,
  StagePlan,
  SuppressionAction,
  Target,
  describeIssues,
} from '../schemas';
import { SA } from '../search-attributes';

export interface LegacyContainmentInput {
  signal: IdentitySignal;
  policy: Policy;
  dryRun?: boolean;
  /** Benchmark comparison only: capture evidence first, then suppress (what most teams do today). */
  evidenceFirst?: boolean;
}

const NON_RETRYABLE = ['IdentityNotFound', 'InvalidConfiguration', 'NotSupported'];
const retry = { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s', nonRetryableErrorTypes: NON_RETRYABLE };
// Actions retry through a provider outage of several minutes before the containment asks for a human.
const act = proxyActivities<ContainmentActivities>({ startToCloseTimeout: '30s', scheduleToCloseTimeout: '10m', retry });
// Evidence is best effort beside suppression: fewer retries, and its failure never blocks the ladder.
const evidence = proxyActivities<ContainmentActivities>({
  startToCloseTimeout: '2m',
  scheduleToCloseTimeout: '5m',
  retry: { ...retry, maximumAttempts: 5 },
});

const POSITION_OF: Record<StageName, LadderPosition> = { restrict: 'restricted', rotate: 'rotated', disable: 'disabled' };
const REVERSIBLE: SuppressionAction[] = ['block-high-risk-apis', 'force-step-up'];
const CLOSED = ['aborted', 'rolled-back'];
const LIFT_SESSION_BLOCK = 'rollback-lifts-session-block';

export async function legacyContainmentV2(input: LegacyContainmentInput): Promise<ContainmentState> {
  const first = IdentitySignal.safeParse(input.signal);
  const policy = Policy.safeParse(input.policy);
  if (!first.success) throw ApplicationFailure.nonRetryable(`invalid signal: ${describeIssues(first.error)}`, 'InvalidInput');
  if (!policy.success) throw ApplicationFailure.nonRetryable(`invalid policy: ${describeIssues(policy.error)}`, 'InvalidInput');
  const dryRun = input.dryRun ?? false;
  const target: Target = { provider: first.data.provider, identityId: first.data.identityId, kind: first.data.identityKind };
  const info = workflowInfo();
  const now = () => new Date().toISOString();

  const state: ContainmentState = {
    containmentId: info.workflowId,
    target,
    status: 'suppressing',
    position: 'new',
    plan: evaluatePolicy(policy.data, first.data, { dryRun }),
    signals: [{ signalId: first.data.signalId, trigger: first.data.trigger, confidence: first.data.confidence, receivedAt: now() }],
    actions: [],
    evidence: [],
    startedAt: now(),
    receipts: {},
  };
  // Operator intent, consumed by the ladder at its next decision point.
  let held = false;
  let advanceRequested = false;
  let dependenciesCleared = false;
  let closing: { type: 'abort' | 'rollback'; by: string; reason: string } | undefined;
  let planVersion = 0;
  const suppressed = new Set<SuppressionAction>();

  const record = (action: string, actor: string, outcome: ContainmentState['actions'][number]['outcome'], detail: string, extra: { before?: unknown; after?: unknown; at?: string } = {}) => {
    const { at, ...rest } = extra;
    state.actions.push({ at: at ?? now(), action, actor, outcome, detail, ...rest });
  };
  const ruleActor = () => `policy:${state.plan.policyVersion}/${state.plan.rule}`;

  let published = '';
  const publish = () => {
    // Upsert only on change: each upsert is a history event, details are not.
    if (published !== `${state.position}/${state.status}`) {
      published = `${state.position}/${state.status}`;
      upsertSearchAttributes([
        { key: SA.stage, value: state.position },
        { key: SA.status, value: state.status },
      ]);
    }
    const pending = state.pendingDecision ? `\n\n**Waiting for:** ${state.pendingDecision.detail}` : '';
    const deadline = state.nextDeadline ? `\n\n**Next deadline:** ${state.nextDeadline}` : '';
    const last = state.actions.slice(-5).map((a) => `- ${a.at} ${a.action}: ${a.outcome} (${a.actor})`).join('\n');
    setCurrentDetails(
      `**${state.status}** at **${state.position}**${dryRun ? ' (dry run)' : ''} · plan \`${state.plan.rule}\` (${state.plan.policyVersion})${pending}${deadline}\n\n${last}`,
    );
  };

  // ---- messages -----------------------------------------------------------------------------
  const nextStage = (): StagePlan | undefined => {
    const reached = LADDER_POSITIONS.indexOf(state.position);
    return state.plan.stages.find((s) => LADDER_POSITIONS.indexOf(POSITION_OF[s.stage]) > reached);
  };

  /** Why a command cannot be taken now, or undefined when it can. */
  const rejection = (c: OperatorCommand): string | undefined => {
    if (CLOSED.includes(state.status)) return `the containment is closed (${state.status})`;
    if (closing) return `the containment is already closing (${closing.type} requested by ${closing.by})`;
    switch (c.type) {
      case 'advance':
        if (held) return 'the containment is on hold: resume it first';
        if (advanceRequested) return 'an advance is already pending';
        if (!nextStage()) return `nothing to advance: the ladder is complete at "${state.position}"`;
        return undefined;
      case 'hold':
        if (held) return 'the containment is already on hold';
        if (!nextStage()) return `nothing to hold: the ladder is complete at "${state.position}"`;
        return undefined;
      case 'resume':
        return held ? undefined : 'the containment is not on hold';
      case 'dependencies-cleared':
        return state.pendingDecision?.kind === 'dependencies' ? undefined : 'no dependency check is waiting';
      case 'abort':
      case 'rollback':
        return undefined;
    }
  };

  const apply = (c: OperatorCommand): void => {
    record(`command:${c.type}`, c.by, 'done', c.reason);
    switch (c.type) {
      case 'advance':
        advanceRequested = true;
        break;
      case 'hold':
        held = true;
        if (state.status === 'active') state.status = 'held';
        break;
      case 'resume':
        held = false;
        if (state.status === 'held') state.status = 'active';
        break;
      case 'dependencies-cleared':
        dependenciesCleared = true;
        break;
      case 'abort':
      case 'rollback':
        closing = { type: c.type, by: c.by, reason: c.reason };
        break;
    }
    publish();
  };

  const parseCommand = (raw: unknown): OperatorCommand => {
    const parsed = OperatorCommand.safeParse(raw);
    if (!parsed.success) throw ApplicationFailure.nonRetryable(`invalid command: ${describeIssues(parsed.error)}`, 'InvalidCommand');
    const why = rejection(parsed.data);
    if (why) throw ApplicationFailure.nonRetryable(`${parsed.data.type} rejected: ${why}`, 'CommandRejected');
    return parsed.data;
  };

  setHandler(stateQuery, () => state);
  setHandler(commandUpdate, (c) => (apply(c), { status: state.status, accepted: c.type }), { validator: (c) => void parseCommand(c) });
  setHandler(commandSignal, (raw) => {
    // Signals cannot answer: a rejected one is logged and changes nothing.
    try {
      apply(parseCommand(raw));
    } catch (err) {
      log.warn('command signal rejected', { error: (err as Error).message });
    }
  });
  setHandler(identitySignal, async (raw) => {
    const parsed = IdentitySignal.safeParse(raw);
    if (!parsed.success) return log.warn('identity signal rejected', { error: describeIssues(parsed.error) });
    const s = parsed.data;
    if (s.provider !== target.provider || s.identityId !== target.identityId) return log.warn('identity signal for another identity ignored');
    if (state.signals.some((seen) => seen.signalId === s.signalId)) return; // duplicate: a no-op by design
    if (CLOSED.includes(state.status) || closing) return log.info('signal arrived while closing; ignored', { signalId: s.signalId });
    state.signals.push({ signalId: s.signalId, trigger: s.trigger, confidence: s.confidence, receivedAt: now() });
    const plan = evaluatePolicy(policy.data, s, { dryRun });
    if (plan.severity <= state.plan.severity) return publish();
    record('escalate', `policy:${plan.policyVersion}/${plan.rule}`, 'done', `signal ${s.signalId} (${s.trigger}, confidence ${s.confidence}) escalates ${state.plan.rule} → ${plan.rule}`);
    state.plan = plan;
    planVersion++;
    upsertSearchAttributes([
      { key: SA.trigger, value: s.trigger },
      { key: SA.risk, value: Math.max(s.riskScore, first.data.riskScore) },
    ]);
    publish();
    await runSuppression(plan.suppress.filter((a) => !suppressed.has(a)), s);
  });

  // ---- steps --------------------------------------------------------------------------------
  const failureText = (err: unknown) => (err instanceof ActivityFailure && err.cause ? err.cause.message : (err as Error).message);

  /** Runs suppression actions in parallel; returns false if any still failed after retries. */
  async function runSuppression(actions: SuppressionAction[], s: IdentitySignal, acknowledged: string[] = []): Promise<boolean> {
    for (const a of actions) suppressed.add(a);
    const results = await Promise.all(
      actions.map(async (a) => {
        if (dryRun) return record(`suppress:${a}`, ruleActor(), 'would-do', `would ${a} for ${target.identityId}`), true;
        try {
          const r = await act.suppress(target, a, s.scope);
          record(`suppress:${a}`, ruleActor(), r.changed ? 'done' : 'unchanged', r.detail, { at: r.at });
          acknowledged.push(r.at ?? now());
          return true;
        } catch (err) {
          record(`suppress:${a}`, ruleActor(), 'failed', failureText(err));
          return false;
        }
      }),
    );
    return results.every(Boolean);
  }

  async function captureAll(): Promise<void> {
    await Promise.all(
      state.plan.evidence.map(async (kind) => {
        if (dryRun) return record(`evidence:${kind}`, ruleActor(), 'would-do', `would capture ${kind}`);
        try {
          const ref = await evidence.captureEvidence(state.containmentId, target, kind);
          state.evidence.push(ref);
          record(`evidence:${kind}`, ruleActor(), 'done', `${ref.bytes} bytes, sha256 ${ref.sha256}`);
        } catch (err) {
          record(`evidence:${kind}`, ruleActor(), 'failed', failureText(err)); // recorded; never undoes suppression
        }
      }),
    );
  }

  async function runStage(sp: StagePlan, actor: string): Promise<void> {
    const before = await act.inspectIdentity(target);
    if (!before.exists) throw ApplicationFailure.nonRetryable(`identity ${target.identityId} no longer exists`, 'IdentityNotFound');
    switch (sp.stage) {
      case 'restrict': {
        const keep = sp.keep ?? [];
        if (dryRun) return record('restrict', actor, 'would-do', `would narrow grants [${before.grants.join(', ')}] to [${keep.join(', ')}] and end ${before.sessions} session(s)`);
        state.receipts.grantsBefore ??= before.grants;
        const r = await act.restrictGrants(target, keep);
        const after = await act.inspectIdentity(target);
        return record('restrict', actor, r.changed ? 'done' : 'unchanged', r.detail, { before: before.grants, after: after.grants, at: r.at });
      }
      case 'rotate': {
        if (dryRun) return record('rotate', actor, 'would-do', 'would issue a new credential to the secret sink and retire the old one');
        const ref = await act.rotateCredential(target, `${info.workflowId}/${info.firstExecutionRunId}/rotate`);
        state.receipts.rotated = ref;
        return record('rotate', actor, 'done', `new credential in ${ref.sink} as ${ref.ref} (fingerprint ${ref.fingerprint})`);
      }
      case 'disable': {
        if (dryRun) return record('disable', actor, 'would-do', `would disable (enabled now: ${before.enabled}) and end ${before.sessions} session(s)`);
        state.receipts.enabledBefore ??= before.enabled;
        const r = await act.setEnabled(target, false);
        return record('disable', actor, r.changed ? 'done' : 'unchanged', r.detail, { before: { enabled: before.enabled }, after: { enabled: false }, at: r.at });
      }
    }
  }

  /** Waits at a stage's gate. 'go' runs the stage; 'replan' means an escalation changed the plan. */
  async function passGate(sp: StagePlan): Promise<{ go: true; actor: string } | { go: false; why: 'closing' | 'replan' }> {
    const version = planVersion;
    const interrupted = () => closing !== undefined || planVersion !== version || held || advanceRequested;
    const timerDeadline = sp.gate.type === 'timer' ? Date.now() + durationMs(sp.gate.after) : undefined;
    for (;;) {
      if (closing) return { go: false, why: 'closing' };
      if (planVersion !== version) return { go: false, why: 'replan' };
      if (held) {
        state.pendingDecision = { kind: 'resume', stage: sp.stage, detail: `on hold before ${sp.stage}: resume to continue` };
        publish();
        await condition(() => !held || closing !== undefined || planVersion !== version);
        continue;
      }
      if (advanceRequested) {
        advanceRequested = false;
        const by = [...state.actions].reverse().find((a) => a.action === 'command:advance')?.actor ?? 'operator';
        return { go: true, actor: by };
      }
      switch (sp.gate.type) {
        case 'timer': {
          const remaining = timerDeadline! - Date.now();
          if (remaining <= 0) return { go: true, actor: ruleActor() };
          state.nextDeadline = new Date(timerDeadline!).toISOString();
          state.pendingDecision = undefined;
          publish();
          await condition(interrupted, remaining);
          break;
        }
        case 'approval':
          state.pendingDecision = { kind: 'approval', stage: sp.stage, detail: `approval to ${sp.stage}: send "advance"` };
          publish();
          await condition(interrupted);
          break;
        case 'dependency-check': {
          if (dependenciesCleared) return { go: true, actor: [...state.actions].reverse().find((a) => a.action === 'command:dependencies-cleared')?.actor ?? 'operator' };
          const deps = dryRun ? [] : await act.findDependents(target);
          if (deps.length === 0) return { go: true, actor: `${ruleActor()} (no dependents)` };
          state.pendingDecision = {
            kind: 'dependencies',
            stage: sp.stage,
            detail: `${deps.length} dependent(s) still use ${target.identityId}: ${deps.map((d) => d.name).join(', ')}; send "dependencies-cleared" or "advance"`,
          };
          state.nextDeadline = new Date(Date.now() + durationMs(sp.gate.recheckEvery)).toISOString();
          publish();
          await condition(() => interrupted() || dependenciesCleared, sp.gate.recheckEvery);
          break;
        }
      }
    }
  }

  /** Walks the ladder until it is complete, closing is requested, or a stage fails. */
  async function climb(): Promise<void> {
    for (let sp = nextStage(); sp && !closing; sp = nextStage()) {
      state.status = held ? 'held' : 'active';
      const gate = await passGate(sp);
      state.pendingDecision = undefined;
      state.nextDeadline = undefined;
      if (!gate.go) continue;
      try {
        await runStage(sp, gate.actor);
        state.position = POSITION_OF[sp.stage];
        publish();
      } catch (err) {
        record(sp.stage, gate.actor, 'failed', failureText(err));
        await needsAttention(`${sp.stage} failed: ${failureText(err)}`);
      }
    }
  }

  /** Parks the containment until an operator retries (advance) or closes it. */
  async function needsAttention(why: string): Promise<void> {
    state.status = 'needs-attention';
    state.pendingDecision = { kind: 'approval', detail: `${why}; "advance" retries, "abort" or "rollback" closes` };
    publish();
    await condition(() => advanceRequested || closing !== undefined);
    advanceRequested = false;
    state.pendingDecision = undefined;
  }

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

  /** Undoes completed steps in reverse: re-enable, re-issue the credential, restore grants, lift blocks. */
  async function rollback(by: string): Promise<boolean> {
    const { receipts } = state;
    if (dryRun) return record('rollback', by, 'would-do', 'would undo every completed step'), true;
    let ok = true;
    if (receipts.enabledBefore !== undefined) ok = (await undo('disable', by, () => act.setEnabled(target, receipts.enabledBefore!))) && ok;
    if (receipts.rotated) {
      ok =
        (await undo('rotate', by, async () => {
          const ref = await act.rotateCredential(target, `${info.workflowId}/${info.firstExecutionRunId}/reissue`);
          return { changed: true, detail: `a rotated secret cannot be un-rotated: re-issued to the owner in ${ref.sink} as ${ref.ref} (fingerprint ${ref.fingerprint})` };
        })) && ok;
    }
    if (receipts.grantsBefore) ok = (await undo('restrict', by, () => act.restoreGrants(target, receipts.grantsBefore!))) && ok;
    // Added after histories were recorded: revoke-sessions may block new logins (PostgreSQL), and
    // rollback lifts that block. Containments started before it replay without the extra step.
    const liftable = patched(LIFT_SESSION_BLOCK) ? [...REVERSIBLE, 'revoke-sessions' as const] : REVERSIBLE;
    const lifts = liftable.filter((x) => suppressed.has(x)).map((a) => undo(`suppress:${a}`, by, () => act.liftSuppression(target, a)));
    for (const r of await Promise.all(lifts)) ok = r && ok;
    if (suppressed.has('revoke-sessions') || suppressed.has('revoke-tokens')) {
      record('rollback:revocations', by, 'not-supported', 'revoked sessions and tokens stay revoked: the owner signs in again');
    }
    return ok;
  }

  // ---- the ladder -----------------------------------------------------------------------------
  publish();
  // 1. Suppression and evidence start together; only suppression is awaited before the ladder.
  const capture = captureAll();
  if (input.evidenceFirst) await capture;
  const acknowledged: string[] = [];
  const suppressedOk = await runSuppression(state.plan.suppress, first.data, acknowledged);
  if (suppressedOk) {
    // The provider's acknowledgement of the last action, not the (later) workflow task time.
    state.suppressedAt = acknowledged.sort().at(-1) ?? now();
    state.position = 'suppressed';
    state.status = 'active';
    publish();
  } else {
    await needsAttention('suppression failed after retries');
    if (!closing) {
      state.position = 'suppressed';
      record('suppress', 'operator', 'skipped', 'operator advanced past a failed suppression');
    }
  }

  // 2..4. Restrict → rotate → disable, then stay open for rollback until the plan's retention ends.
  while (!closing) {
    await climb();
    if (closing) break;
    state.status = state.plan.stages.length ? 'contained' : 'watching';
    state.pendingDecision = undefined;
    state.nextDeadline = new Date(Date.now() + durationMs(state.plan.retainFor)).toISOString();
    publish();
    const version = planVersion;
    const woke = await condition(() => closing !== undefined || planVersion !== version, state.plan.retainFor);
    if (!woke) break;
  }

  // 5. Close: rollback, abort, or retention over.
  const c = closing as { type: 'abort' | 'rollback'; by: string; reason: string } | undefined;
  if (c?.type === 'rollback') {
    const ok = await rollback(c.by);
    state.status = ok ? 'rolled-back' : 'needs-attention';
    state.position = ok ? 'new' : state.position;
    state.closedReason = `rolled back by ${c.by}: ${c.reason}${ok ? '' : ' (some steps failed: see actions)'}`;
  } else if (c?.type === 'abort') {
    state.status = 'aborted';
    state.closedReason = `aborted by ${c.by}: ${c.reason}`;
  } else {
    state.closedReason = `retention of ${state.plan.retainFor} ended`;
  }
  state.pendingDecision = undefined;
  state.nextDeadline = undefined;
  publish();
  await capture;
  await condition(allHandlersFinished);
  return state;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
function durationMs(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d);
  if (!m) throw ApplicationFailure.nonRetryable(`bad duration ${d}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}
