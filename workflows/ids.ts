// One containment per identity: the workflow id is derived from provider and identity, and the
// workflow refuses to run under any other id.
import type { IdentitySignal, Target } from './schemas';

export const TASK_QUEUE_DEFAULT = 'cordon';

/**
 * The identity a containment is for. A PostgreSQL role is one identity cluster-wide (password,
 * NOLOGIN and connection limit are global), so `role@db` and `role` share one containment.
 */
export function identityKey(t: Pick<Target, 'provider' | 'identityId'>): string {
  return t.provider === 'postgres' ? t.identityId.replace(/@[^@]*$/, '') : t.identityId;
}

export function containmentWorkflowId(t: Pick<Target, 'provider' | 'identityId'>): string {
  return `cordon/${t.provider}/${identityKey(t)}`;
}

/** A dry run has its own id per signal, so it never joins (or blocks) the real containment. */
export function dryRunWorkflowId(s: Pick<IdentitySignal, 'provider' | 'identityId' | 'signalId'>): string {
  return `cordon-dryrun/${s.provider}/${identityKey(s)}/${s.signalId}`;
}

export function sameIdentity(a: Pick<Target, 'provider' | 'identityId'>, b: Pick<Target, 'provider' | 'identityId'>): boolean {
  return a.provider === b.provider && identityKey(a) === identityKey(b);
}

/** A short, stable hash of a signal id (FNV-1a, two lanes): 10,000 of them stay small in carried state. */
export function shortHash(s: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}
