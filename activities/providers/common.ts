// What every provider shares: turning what happened into an ActionResult, refusing identities
// Cordon must never touch, narrowing a grant list without ever adding to it, telling dependents
// from the sessions suppression ended, keeping secrets out of evidence, and reading the running
// activity's cancellation.
import { Context } from '@temporalio/activity';
import type { ActionResult, Dependent, Receipt, SuppressionAction } from '../../workflows/schemas';
import { InvalidInputError, NotSupportedError } from './provider';

/** `changes` lists what this call actually did; none means it was already in place. */
export function outcome(op: string, changes: (string | false | undefined)[], receipt?: Receipt): ActionResult {
  const done = changes.filter((c): c is string => Boolean(c));
  const result: ActionResult = done.length ? { changed: true, detail: done.join('; ') } : { changed: false, detail: `${op}: already in place` };
  return receipt ? { ...result, receipt } : result;
}

/** A suppression action the system has no equivalent for: nothing to do, said plainly. */
export function notApplicable(provider: string, action: SuppressionAction, why: string): ActionResult {
  return { changed: false, detail: `${action}: not applicable to ${provider} (${why})` };
}

/** Refuses identities whose containment would lock Cordon (or everyone) out. */
export function refuse(provider: string, identityId: string, reason: string | undefined): void {
  if (reason) throw new NotSupportedError(`${provider}: refusing to contain "${identityId}": ${reason}`);
}

/** Checks every entry of a grant list before anything changes; a bad one is the caller's error, not an outage. */
export function validGrants(provider: string, grants: string[], valid: (g: string) => boolean, notation: string): void {
  const bad = grants.find((g) => !valid(g));
  if (bad !== undefined) throw new InvalidInputError(`${provider}: "${bad}" is not a grant in Cordon's notation (${notation})`);
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

/** A session as the workflow sees it: the client's own name, where it connects from, when it was seen. */
export function sessionAsDependent(name: string | null | undefined, address: string | null | undefined, lastSeen?: Date | string): Dependent {
  const at = lastSeen instanceof Date ? lastSeen.toISOString() : lastSeen;
  return { name: name || 'unnamed client', address: address || 'local socket', ...(at ? { lastSeen: at } : {}) };
}

const clientKey = (d: Dependent) => JSON.stringify([d.name, d.address ?? null]);

/**
 * One entry per client (name and address), leaving out the clients whose sessions suppression
 * ended: the attacker's tool is not something the identity's owner depends on.
 */
export function dependentsExcept(sessions: Dependent[], exclude: Dependent[] = []): Dependent[] {
  const ended = new Set(exclude.map(clientKey));
  const byClient = new Map<string, Dependent>();
  for (const d of sessions) if (!ended.has(clientKey(d))) byClient.set(clientKey(d), d);
  return [...byClient.values()];
}

/** A number the receipt holds under `key`, if it holds one. */
export function receiptNumber(receipt: Receipt | undefined, key: string): number | undefined {
  const v = receipt?.[key];
  return typeof v === 'number' && Number.isInteger(v) ? v : undefined;
}

export function receiptBoolean(receipt: Receipt | undefined, key: string): boolean | undefined {
  const v = receipt?.[key];
  return typeof v === 'boolean' ? v : undefined;
}

/** The running activity's context; none when a provider is called directly (tests, the benchmark). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** The running activity's cancellation, if any. Reaching it needs heartbeats, which the activity layer sends. */
export const cancellation = (): AbortSignal | undefined => activityContext()?.cancellationSignal;

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
