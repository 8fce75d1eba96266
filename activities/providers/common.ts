// What every provider shares: turning what happened into an ActionResult, refusing identities
// Cordon must never touch, narrowing a grant list without ever adding to it, leaving ended
// sessions out of dependents and secrets out of evidence.
import type { ActionResult, Dependent, SuppressionAction } from '../../workflows/schemas';
import { NotSupportedError } from './provider';

/** `changes` lists what this call actually did; none means it was already in place. */
export function outcome(op: string, changes: (string | false | undefined)[]): ActionResult {
  const done = changes.filter((c): c is string => Boolean(c));
  return done.length ? { changed: true, detail: done.join('; ') } : { changed: false, detail: `${op}: already in place` };
}

/** A suppression action the system has no equivalent for: nothing to do, said plainly. */
export function notApplicable(provider: string, action: SuppressionAction, why: string): ActionResult {
  return { changed: false, detail: `${action}: not applicable to ${provider} (${why})` };
}

/** Refuses identities whose containment would lock Cordon (or everyone) out. */
export function refuse(provider: string, identityId: string, reason: string | undefined): void {
  if (reason) throw new NotSupportedError(`${provider}: refusing to contain "${identityId}": ${reason}`);
}

/**
 * The grants that remain after narrowing to `keep`: a grant survives only if kept, or if it can
 * only take access away (such as a Redis `-command` rule). Order is preserved.
 */
export function narrow(current: string[], keep: string[], onlyRemovesAccess: (g: string) => boolean = () => false): { kept: string[]; removed: string[] } {
  const kept = current.filter((g) => keep.includes(g) || onlyRemovesAccess(g));
  return { kept, removed: current.filter((g) => !kept.includes(g)) };
}

export const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((g, i) => g === b[i]);

/**
 * Drops from `deps` what suppression already ended (`exclude`, typically the attacker's sessions):
 * the same client at the same address, unless it was seen again after it was ended.
 */
export function excludeEnded(deps: Dependent[], exclude: Dependent[] = []): Dependent[] {
  return deps.filter((d) => !exclude.some((e) => e.name === d.name && e.address === d.address && (!e.lastSeen || !d.lastSeen || d.lastSeen <= e.lastSeen)));
}

// Keys whose values are credentials (client secrets, private keys, passwords, registration tokens);
// their metadata (`….creation.time`, `….expiration.time`) stays.
const SECRET_KEY = /secret|password|passwd|private|registrationaccesstoken|^credentials$/i;
const JWT = /^eyJ[\w-]*\.[\w-]*\./;

/** A copy of `value` fit for evidence: secret-bearing keys and anything shaped like a JWT removed. */
export function stripSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map(stripSecrets) as T;
  if (typeof value === 'string') return (JWT.test(value) ? '[removed: token]' : value) as T;
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([k]) => !SECRET_KEY.test(k) || /time$/i.test(k))
      .map(([k, v]) => [k, stripSecrets(v)]),
  ) as T;
}
