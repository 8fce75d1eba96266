// Implements the workflow's activity contract over the provider interface, the evidence store
// and the secret sink. Provider errors that retrying cannot fix become non-retryable failures.
import { ApplicationFailure, sleep } from '@temporalio/activity';
import type { ApprovedPolicy, ContainmentActivities, FirstAttempt } from '../workflows/contract';
import { evaluatePolicy } from '../workflows/policy';
import type { EmittedKind } from '../workflows/ssf-events';
import type { ActionResult, EvidenceKind, EvidenceOutcome, EvidenceRef, Scope, SuppressionAction, SuppressionResult, Target } from '../workflows/schemas';
import type { EvidenceStore } from './evidence-store';
import type { OperatorVerifier } from './operator-auth';
import { approve } from './policy-store';
import { IdentityNotFoundError, IncompleteError, InvalidInputError, NotSupportedError, type IdentityProvider } from './providers/provider';
import { activityContext } from './providers/common';
import { recordProviderCall } from './metrics';
import type { ProviderRegistry } from './providers/registry';
import type { SecretSink } from './secret-sink';

export interface ActivityDeps {
  providers: ProviderRegistry;
  evidence: EvidenceStore;
  secrets: SecretSink;
  /** The approved policy, read and validated when the worker started. */
  policy: ApprovedPolicy;
  operators: OperatorVerifier;
  /** v5: evidence in the task that suppresses (CORDON_EVIDENCE_IN_TASK). */
  evidenceInTask?: boolean;
  /** v7: the Shared Signals receivers that want a kind of event (the worker's SSF settings). */
  receivers?: (kind: EmittedKind) => string[];
}

/** How often a running activity heartbeats when the workflow set no heartbeat timeout. */
const HEARTBEAT_MS = 2000;
/** Tries per kind of evidence inside one capture, backing off from 200 ms to 5 s (as the ladder's activities do). */
const EVIDENCE_TRIES = 5;
const backoff = (attempt: number) => Math.min(200 * 2 ** (attempt - 1), 5000);
/** v6: how long a suppression's first attempt, in the step that reads the policy, may take before its own activity takes over. */
const FIRST_TRY_MS = 5000;

export function createContainmentActivities({ providers, evidence, secrets, policy, operators, evidenceInTask = true, receivers }: ActivityDeps): ContainmentActivities {
  /**
   * Runs `fn` against the target's provider, translating permanent errors for Temporal. While it
   * runs, the activity heartbeats: that is how a cancellation reaches it (the provider then stops
   * what it is doing, see cancellation() in providers/common.ts), and how a worker that died
   * mid-step is noticed when the workflow sets a heartbeat timeout.
   */
  async function on<T>(target: Target, fn: (p: IdentityProvider) => Promise<T>, action?: string, o: { heartbeat?: boolean } = {}): Promise<T> {
    const provider = providers.get(target.provider);
    if (!provider) {
      throw ApplicationFailure.nonRetryable(`no provider "${target.provider}" is configured on this worker (have: ${[...providers.keys()].join(', ')})`, 'InvalidConfiguration');
    }
    const ctx = activityContext();
    if (ctx?.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
    // A local activity has no heartbeat: its cancellation reaches it through the worker directly.
    const every = ctx?.info.heartbeatTimeoutMs ? Math.max(200, ctx.info.heartbeatTimeoutMs / 3) : HEARTBEAT_MS;
    // A caller that heartbeats its own details (captureEvidenceSet) must not have them overwritten.
    const beat = ctx && !ctx.info.isLocal && o.heartbeat !== false && setInterval(() => ctx.heartbeat(), every);
    const started = performance.now();
    const took = (outcome: string) => ctx && recordProviderCall(ctx, target.provider, action ?? ctx.info.activityType, outcome, performance.now() - started);
    try {
      const result = await fn(provider);
      took('ok');
      return result;
    } catch (err) {
      took('error');
      // Cancelled: say so (the provider's own error is only how it stopped).
      if (ctx?.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      if (err instanceof IdentityNotFoundError || err instanceof NotSupportedError || err instanceof InvalidInputError || err instanceof IncompleteError) {
        throw ApplicationFailure.nonRetryable(err.message, err.name);
      }
      throw err;
    } finally {
      if (beat) clearInterval(beat);
    }
  }

  function suppress(t: Target, action: SuppressionAction, scope?: Scope, containmentId?: string): Promise<SuppressionResult> {
    return on(t, async (p) => {
      const { ended, ...result } = await p.suppress(t.identityId, action, scope);
      const at = new Date().toISOString();
      // The sessions this action ended are evidence the later session capture cannot see.
      const ref = ended?.length && containmentId ? await evidence.put(containmentId, 'sessions', { contentType: 'application/json', body: JSON.stringify({ endedBy: action, at, sessions: ended }) }) : undefined;
      return { ...result, at, ...(ended?.length ? { ended: ended.slice(0, 50) } : {}), ...(ref ? { evidence: ref } : {}) };
    }, `suppress:${action}`);
  }

  /**
   * One suppression's first attempt (v6), as its own activity would make it. Past FIRST_TRY_MS it
   * is handed to that activity: as after a start-to-close timeout, the late call may still land,
   * which every provider action, being idempotent, allows.
   */
  async function firstAttempt(t: Target, action: SuppressionAction, scope: Scope | undefined, containmentId: string): Promise<FirstAttempt> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<FirstAttempt>((resolve) => {
      timer = setTimeout(() => resolve({ action, error: `no answer within ${FIRST_TRY_MS} ms; its own activity tries again`, retry: true }), FIRST_TRY_MS);
    });
    const attempt = suppress(t, action, scope, containmentId).then(
      (result): FirstAttempt => ({ action, result }),
      (err: Error): FirstAttempt => ({ action, error: err.message, retry: !(err instanceof ApplicationFailure && err.nonRetryable) }),
    );
    try {
      return await Promise.race([attempt, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One capture of one kind of evidence, stored; its outcome, or its error. */
  const captureOnce = (containmentId: string, t: Target, kind: EvidenceKind) =>
    on(t, async (p) => evidence.put(containmentId, kind, await p.evidence(t.identityId, kind)), `evidence:${kind}`, { heartbeat: false });

  /**
   * v8: first attempts at evidence still running when their step returned, by containment and
   * kind: the workflow's own capture of that kind on this worker joins one instead of reading the
   * provider again. Kept until claimed, or for a minute after it settles.
   */
  const stillCapturing = new Map<string, Promise<EvidenceRef>>();
  const captureKey = (containmentId: string, kind: EvidenceKind) => `${containmentId}\n${kind}`;
  const claim = (containmentId: string, kind: EvidenceKind) => {
    const key = captureKey(containmentId, kind);
    const capture = stillCapturing.get(key);
    stillCapturing.delete(key);
    return capture;
  };

  /**
   * v8: the first attempt at each kind of evidence, in the first step, for at most FIRST_TRY_MS.
   * Only the kinds captured come back; the workflow takes the rest with its own retries: a failed
   * kind again, one still running past FIRST_TRY_MS by joining it.
   */
  async function firstEvidence(containmentId: string, t: Target, kinds: EvidenceKind[]): Promise<EvidenceOutcome[]> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), FIRST_TRY_MS)));
    try {
      const outcomes = await Promise.all(
        kinds.map(async (kind): Promise<EvidenceOutcome | undefined> => {
          const started = performance.now();
          const capture = captureOnce(containmentId, t, kind);
          const outcome = await Promise.race([capture.then((ref) => ({ kind, ref, attempts: 1, ms: Math.round(performance.now() - started) }), () => undefined), late]);
          if (outcome !== 'late') return outcome;
          const key = captureKey(containmentId, kind);
          stillCapturing.set(key, capture);
          const forget = () => void setTimeout(() => stillCapturing.get(key) === capture && stillCapturing.delete(key), 60_000).unref();
          capture.then(forget, forget);
          return undefined;
        }),
      );
      return outcomes.filter((o) => o !== undefined);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stamps a result with the moment the provider acknowledged it. */
  const acked = async (r: Promise<ActionResult>): Promise<ActionResult> => ({ ...(await r), at: new Date().toISOString() });

  return {
    loadPolicy: async (candidate) => {
      // Recorded in the marker, so a replay takes evidence the way the run did, whatever the worker's setting now.
      if (candidate === undefined) return { ...policy, evidenceInTask };
      try {
        return { ...approve(candidate), evidenceInTask };
      } catch (err) {
        throw ApplicationFailure.nonRetryable(`candidate policy refused: ${(err as Error).message}`, 'InvalidInput');
      }
    },
    verifyOperator: (sealed, binding) => operators.verifyOperator(sealed, binding),
    archiveRecords: (containmentId, records) => evidence.put(containmentId, 'archive', { contentType: 'application/json', body: JSON.stringify(records) }),
    inspectIdentity: (t) => on(t, (p) => p.inspect(t.identityId)),
    loadPolicyAndSuppress: async (signal, containmentId, o) => {
      const target: Target = { provider: signal.provider, identityId: signal.identityId, kind: signal.identityKind };
      const plan = evaluatePolicy(policy.policy, signal, { dryRun: false });
      const attempts = await Promise.all(plan.suppress.map((a) => firstAttempt(target, a, signal.scope, containmentId)));
      // v8: then evidence, in the same step, unless the worker takes evidence outside the workflow
      // task. After the attempts, as v7's step of its own was: a provider's evidence reuses the
      // reads suppression has just made (Keycloak), and never competes with the cut for its server.
      const captured = o?.evidence && evidenceInTask && plan.evidence.length ? await firstEvidence(containmentId, target, plan.evidence) : undefined;
      // v7: who hears of the revoked sessions, so the workflow's emit asks for no list of its own.
      return { ...policy, evidenceInTask, attempts, ...(captured ? { evidence: captured } : {}), ...(receivers ? { receivers: { 'session-revoked': receivers('session-revoked') } } : {}) };
    },
    suppress,
    liftSuppression: (t, action, receipt) => on(t, (p) => acked(p.liftSuppression(t.identityId, action, receipt)), `lift:${action}`),
    captureEvidence: (containmentId, t, kind) => on(t, async (p) => evidence.put(containmentId, kind, await p.evidence(t.identityId, kind)), `evidence:${kind}`),
    captureEvidenceSet: async (containmentId, t, kinds) => {
      // Kinds captured by an earlier attempt of this activity (a worker that died mid-capture) are kept, not taken again.
      const ctx = activityContext();
      const before = (ctx?.info.heartbeatDetails as { done?: EvidenceOutcome[] } | undefined)?.done ?? [];
      const done = new Map<EvidenceKind, EvidenceOutcome>(before.filter((o) => o.ref).map((o) => [o.kind, o]));
      // A local activity (v5) cannot heartbeat: the SDK heartbeats its workflow task instead.
      const durable = ctx && !ctx.info.isLocal;
      const beat = durable && setInterval(() => ctx.heartbeat({ done: [...done.values()] }), HEARTBEAT_MS);
      try {
        return await Promise.all(
          kinds.map(async (kind): Promise<EvidenceOutcome> => {
            const kept = done.get(kind);
            if (kept) return kept;
            const started = performance.now();
            for (let attempt = 1; ; attempt++) {
              try {
                const ref = await ((attempt === 1 && claim(containmentId, kind)) || captureOnce(containmentId, t, kind));
                const outcome = { kind, ref, attempts: attempt, ms: Math.round(performance.now() - started) };
                done.set(kind, outcome);
                if (durable) ctx.heartbeat({ done: [...done.values()] });
                return outcome;
              } catch (err) {
                const permanent = err instanceof ApplicationFailure && err.nonRetryable;
                if (permanent || attempt >= EVIDENCE_TRIES || ctx?.cancellationSignal.aborted) {
                  ctx?.log.warn('evidence capture failed', { kind, attempts: attempt, error: (err as Error).message });
                  return { kind, error: (err as Error).message, attempts: attempt, ms: Math.round(performance.now() - started) };
                }
                await (ctx ? sleep(backoff(attempt)) : new Promise((r) => setTimeout(r, backoff(attempt))));
              }
            }
          }),
        );
      } finally {
        if (beat) clearInterval(beat);
      }
    },
    restrictGrants: (t, keep) => on(t, (p) => acked(p.restrict(t.identityId, keep))),
    restoreGrants: (t, grants) => on(t, (p) => acked(p.restore(t.identityId, grants))),
    rotateCredential: (t, key, loginBlock) =>
      on(t, async (p) => {
        // Check first so a missing identity never mints a secret into the sink.
        if (!(await p.inspect(t.identityId)).exists) throw new IdentityNotFoundError(p.name, t.identityId);
        const { secret, ref } = await secrets.issue(key, t);
        await p.setSecret(t.identityId, secret, loginBlock);
        return ref;
      }),
    setEnabled: (t, enabled) => on(t, (p) => acked(p.setEnabled(t.identityId, enabled))),
    findDependents: (t, exclude) => on(t, (p) => p.dependents(t.identityId, exclude)),
  };
}

/** The engine-floor benchmark's activity: does nothing, on purpose, and says when. */
export async function noop(tag: string): Promise<{ tag: string; at: number }> {
  return { tag, at: Date.now() };
}
