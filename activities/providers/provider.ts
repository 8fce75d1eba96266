// The one small interface every identity system implements. Each method is idempotent:
// running it twice leaves the system as running it once (the workflow may retry anything).
import type { ActionResult, Dependent, EvidenceKind, IdentitySnapshot, Receipt, Scope, SuppressionAction } from '../../workflows/schemas';

export interface EvidenceArtifact {
  contentType: string;
  body: string;
}

export interface IdentityProvider {
  readonly name: string;
  /** Read-only; `exists: false` rather than an error for a missing identity. */
  inspect(identityId: string): Promise<IdentitySnapshot>;
  /**
   * One suppression action. `receipt` carries what lifting it needs (e.g. the connection limit or
   * enabled flag before a login block); `ended` lists the sessions it ended (they become evidence,
   * and are excluded from dependents).
   */
  suppress(identityId: string, action: SuppressionAction, scope?: Scope): Promise<ActionResult & { ended?: Dependent[] }>;
  /** Undoes a reversible suppression exactly, from the receipt its suppress() returned. */
  liftSuppression(identityId: string, action: SuppressionAction, receipt?: Receipt): Promise<ActionResult>;
  /** Never returns secret material. */
  evidence(identityId: string, kind: EvidenceKind): Promise<EvidenceArtifact>;
  /** Narrows grants to `keep` (never adds) and ends live sessions, which would keep the old reach. */
  restrict(identityId: string, keep: string[]): Promise<ActionResult>;
  /** Sets grants back to exactly `grants`, as captured by inspect() before restrict. */
  restore(identityId: string, grants: string[]): Promise<ActionResult>;
  /**
   * Replaces the credential with `secret` (the old one stops working) and ends live sessions.
   * `loginBlock` is the receipt of the revoke-sessions suppression, if any: a login block it set
   * is lifted to exactly what it was, since the leaked credential no longer works.
   */
  setSecret(identityId: string, secret: string, loginBlock?: Receipt): Promise<ActionResult>;
  /** Disabling also ends live sessions. */
  setEnabled(identityId: string, enabled: boolean): Promise<ActionResult>;
  /** Who still relies on the identity; `exclude` are the sessions suppression ended (the attacker's). */
  dependents(identityId: string, exclude?: Dependent[]): Promise<Dependent[]>;
  /**
   * Opens the admin connection (and signs in) before the first containment needs it: incidents
   * arrive on idle workers, so the first suppression must not pay for a handshake. Best effort.
   */
  warm?(): Promise<void>;
  close(): Promise<void>;
}

/** The identity does not exist: retrying cannot help. */
export class IdentityNotFoundError extends Error {
  override name = 'IdentityNotFound';
  constructor(provider: string, identityId: string) {
    super(`${provider}: identity "${identityId}" does not exist`);
  }
}

/** The provider has no such capability: retrying cannot help. */
export class NotSupportedError extends Error {
  override name = 'NotSupported';
}

/** The request itself is wrong (a malformed grant or rule, an unusable scope or identity id): retrying cannot help. */
export class InvalidInputError extends Error {
  override name = 'InvalidInput';
}

/**
 * The step ran, but checking the result afterwards found it short of what it must be (say, a
 * grant that survived restrict). What could be done is done; a human decides what is next.
 */
export class IncompleteError extends Error {
  override name = 'Incomplete';
}
