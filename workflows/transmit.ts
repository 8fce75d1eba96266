// The containment as a Shared Signals transmitter: after sessions are revoked, a credential
// rotated or an account disabled, every configured receiver is told with a signed SET (CAEP
// session-revoked, credential-change, RISC account-disabled). Emission is started and never
// awaited by the ladder, so a receiver that is down cannot delay suppression; each push is its
// own activity, retried, with the same jti on every attempt (derived from the containment's
// first run and the step), and what was sent to whom is recorded in the actions.
import { ActivityFailure, proxyActivities, proxyLocalActivities, workflowInfo } from '@temporalio/workflow';
import type { EmittedKind } from './ssf-events';
import type { ActionRecord, Target } from './schemas';

export interface SecurityEventRequest {
  kind: EmittedKind;
  /** Same on every attempt: the receiver deduplicates on the jti derived from it. */
  key: string;
  /** Seconds since the epoch, fixed by the workflow so a retried SET is byte-identical. */
  iat: number;
  target: Target;
  containmentId: string;
}

export interface PushResult {
  receiver: string;
  endpoint: string;
  jti: string;
  status: number;
}

export interface TransmitActivities {
  /** The receivers configured on this worker that want `kind`. */
  ssfReceivers(kind: EmittedKind): Promise<string[]>;
  /** Signs the SET and pushes it to one receiver (RFC 8935); throws to be retried. */
  pushSecurityEvent(receiver: string, e: SecurityEventRequest): Promise<PushResult>;
}

// Before v4, a regular activity, so as not to hold open the workflow task that recorded the
// suppression. From v4 the provider calls are local activities in that task anyway, and reading
// the worker's receiver list is in memory: a local activity costs one marker, not a task.
const list = proxyActivities<TransmitActivities>({ startToCloseTimeout: '5s', retry: { maximumAttempts: 5 } });
const listLocal = proxyLocalActivities<TransmitActivities>({ startToCloseTimeout: '5s', retry: { maximumAttempts: 5 } });
// A receiver may be down for a while: keep trying for an hour, backing off to a minute.
const push = proxyActivities<TransmitActivities>({
  startToCloseTimeout: '15s',
  scheduleToCloseTimeout: '1h',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m', nonRetryableErrorTypes: ['ReceiverRefused', 'InvalidConfiguration'] },
});

type Recorder = (action: string, actor: string, outcome: ActionRecord['outcome'], detail: string) => void;

/**
 * `known` (v7): receiver lists the containment's first step read with the policy, recorded in its
 * result. The emit that follows suppression a moment later takes its list from there instead of a
 * local activity of its own (a marker and a workflow activation on every containment, for a list
 * that is usually empty). Once that first suppression is over (readAfresh), every emit reads the
 * worker's list when it happens: a retry after "advance", or a later stage, may come days on.
 */
export function securityEvents(o: { target: Target; dryRun: boolean; record: Recorder; local?: boolean; known?: Partial<Record<EmittedKind, string[]>> }) {
  const inflight = new Set<Promise<void>>();
  const emitted = new Set<EmittedKind>();
  let known = { ...o.known };

  async function transmit(kind: EmittedKind, listed: string[] | undefined): Promise<void> {
    const info = workflowInfo();
    const request: SecurityEventRequest = {
      kind,
      key: `${info.workflowId}/${info.firstExecutionRunId}/${kind}`,
      iat: Math.floor(Date.now() / 1000),
      target: o.target,
      containmentId: info.workflowId,
    };
    let receivers: string[];
    try {
      receivers = listed ?? (await (o.local ? listLocal : list).ssfReceivers.executeWithOptions({ summary: `ssf: who receives ${kind}` }, [kind]));
    } catch (err) {
      return o.record(`ssf:${kind}`, 'cordon-ssf', 'failed', `could not read the receivers: ${(err as Error).message}`);
    }
    if (!receivers.length) return;
    await Promise.all(
      receivers.map(async (name) => {
        try {
          const r = await push.pushSecurityEvent.executeWithOptions({ summary: `ssf: push ${kind} to ${name}` }, [name, request]);
          o.record(`ssf:${kind}`, 'cordon-ssf', 'done', `pushed to ${r.receiver} (${r.endpoint}): jti ${r.jti}, HTTP ${r.status}`);
        } catch (err) {
          const why = err instanceof ActivityFailure && err.cause ? err.cause.message : (err as Error).message;
          o.record(`ssf:${kind}`, 'cordon-ssf', 'failed', `not delivered to ${name}: ${why}`);
        }
      }),
    );
  }

  return {
    /** Starts telling the receivers; returns at once. */
    emit(kind: EmittedKind): void {
      if (o.dryRun || emitted.has(kind)) return;
      emitted.add(kind);
      const listed = known[kind];
      if (listed?.length === 0) return; // nobody wants it: no activity, no promise
      const p = transmit(kind, listed).finally(() => inflight.delete(p));
      inflight.add(p);
    },
    /** From now on, emits read the worker's receivers when they happen (the first step's lists are spent). */
    readAfresh(): void {
      known = {};
    },
    /** Waits for every push started so far (before the containment closes or continues as new). */
    async settled(): Promise<void> {
      while (inflight.size) await Promise.all([...inflight]);
    },
  };
}
