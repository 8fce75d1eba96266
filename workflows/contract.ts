// The activity contract: what the ladder needs from the outside world. activities/ implements it;
// the workflow proxies it by type only, so workflow code never imports I/O.
import type { Policy } from './policy';
import type { EmittedKind } from './ssf-events';
import type {
  ActionRecord,
  ActionResult,
  CommandBinding,
  Dependent,
  EvidenceKind,
  EvidenceOutcome,
  EvidenceRef,
  IdentitySignal,
  IdentitySnapshot,
  Receipt,
  Scope,
  SecretRef,
  SuppressionAction,
  SuppressionResult,
  Target,
  Verdict,
} from './schemas';

/** The approved policy as the worker read it: recorded in history by the workflow's first step. */
export interface ApprovedPolicy {
  version: string;
  sha256: string;
  policy: Policy;
}

/** What a containment's first step reads from its worker: the approved policy, and how evidence is taken (v5). */
export interface RunSettings extends ApprovedPolicy {
  /** Evidence as a local activity in the task that suppresses (absent: yes). */
  evidenceInTask?: boolean;
}

/**
 * A suppression's first attempt, made by the step that reads the policy (v6): its result, or why
 * it failed and whether its own activity should try again.
 */
export type FirstAttempt = { action: SuppressionAction; result: SuppressionResult } | { action: SuppressionAction; error: string; retry: boolean };

/** v6's first step: the run's settings, and the first attempt at each suppression the plan asks for. */
export interface FirstStep extends RunSettings {
  attempts: FirstAttempt[];
  /** v7: the receivers that want what suppression emits (session-revoked), read in the same step. */
  receivers?: Partial<Record<EmittedKind, string[]>>;
  /** v8: the kinds of evidence the same step captured after its attempts (the others are the workflow's to take). */
  evidence?: EvidenceOutcome[];
}

export interface ContainmentActivities {
  /** The worker's approved policy; for a dry run, the caller's candidate validated instead. */
  loadPolicy(candidate?: unknown): Promise<RunSettings>;
  /**
   * v6: the approved policy, and the first attempt at the suppression its plan for `signal` asks
   * for, in the same call: suppression then waits for no workflow task between reading the policy
   * and acting on it. Never throws for a suppression's failure; each is in `attempts`. v8 asks
   * for `evidence` too: then the first attempt at each kind the plan asks for, in the same step.
   */
  loadPolicyAndSuppress(signal: IdentitySignal, containmentId: string, o?: { evidence?: boolean }): Promise<FirstStep>;
  /** Opens a sealed command token and verifies it (signature, issuer, audience, expiry, binding); never returns the token. */
  verifyOperator(sealed: string, binding: CommandBinding): Promise<Verdict>;
  /** Moves old action records out of the workflow's state into the evidence store. */
  archiveRecords(containmentId: string, records: ActionRecord[]): Promise<EvidenceRef>;
  /** Read-only: whether the identity exists, is enabled, its grants and live session count. */
  inspectIdentity(target: Target): Promise<IdentitySnapshot>;
  /**
   * One suppression action (revoke sessions, tokens, block APIs, step-up); idempotent. The sessions
   * it ended are written to the evidence store under `containmentId` (reference in `evidence`).
   */
  suppress(target: Target, action: SuppressionAction, scope?: Scope, containmentId?: string): Promise<SuppressionResult>;
  /** Captures one kind of evidence into the evidence store; only its reference and hash come back. */
  captureEvidence(containmentId: string, target: Target, kind: EvidenceKind): Promise<EvidenceRef>;
  /**
   * Captures several kinds of evidence at once, each retried on its own; one outcome per kind, a
   * failed kind as its error (v4: one activity, one workflow task, instead of one per kind).
   */
  captureEvidenceSet(containmentId: string, target: Target, kinds: EvidenceKind[]): Promise<EvidenceOutcome[]>;
  /** Narrows grants to the approved minimum and ends live sessions (which would keep old grants). */
  restrictGrants(target: Target, keep: string[]): Promise<ActionResult>;
  /** Puts grants back exactly as they were (rollback of restrict). */
  restoreGrants(target: Target, grants: string[]): Promise<ActionResult>;
  /** Issues a new secret into the secret sink under an idempotency key and sets it; returns a reference, never the secret. */
  rotateCredential(target: Target, idempotencyKey: string, loginBlock?: Receipt): Promise<SecretRef>;
  /** Rollback of a reversible suppression (login block, API block, step-up) from its receipt; revoked sessions stay revoked. */
  liftSuppression(target: Target, action: SuppressionAction, receipt?: Receipt): Promise<ActionResult>;
  /** Disabling also ends live sessions; enabling is rollback. */
  setEnabled(target: Target, enabled: boolean): Promise<ActionResult>;
  /** Who still relies on this identity (pipelines, jobs, clients seen recently). */
  findDependents(target: Target, exclude?: Dependent[]): Promise<Dependent[]>;
}
