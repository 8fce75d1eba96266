// What every provider shares: turning what happened into an ActionResult, refusing identities
// Cordon must never touch, and narrowing a grant list without ever adding to it.
import type { ActionResult, SuppressionAction } from '../../workflows/schemas';
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
