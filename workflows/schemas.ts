// The one source of truth for Cordon's data: every type is inferred from these schemas.
// Pure module: imported by workflow code, activities, workers and clients alike.
import { z } from 'zod';

export const IDENTITY_KINDS = ['human', 'service-account', 'api-key', 'workload', 'database-role', 'oauth-client'] as const;
export const IdentityKind = z.enum(IDENTITY_KINDS);
export type IdentityKind = z.infer<typeof IdentityKind>;

export const KNOWN_TRIGGERS = [
  'impossible-travel',
  'atypical-api-pattern',
  'privilege-escalation',
  'new-device',
  'unusual-token-issuance',
  'off-hours-service-principal',
  'secret-exposed',
] as const;
/** A known trigger, or a detection's own name written `custom:<name>`. */
export const Trigger = z.union([
  z.enum(KNOWN_TRIGGERS),
  z.string().regex(/^custom:[a-z0-9][a-z0-9._-]{0,62}$/, 'a custom trigger is written "custom:<name>" (lowercase letters, digits, . _ -)'),
]);
export type Trigger = z.infer<typeof Trigger>;

export const Level = z.enum(['low', 'medium', 'high', 'critical']);
export type Level = z.infer<typeof Level>;

const token = (what: string) =>
  z
    .string()
    .min(1, `${what} must not be empty`)
    .max(200, `${what} is at most 200 characters`)
    .regex(/^[\x21-\x7e]+$/, `${what} must be printable ASCII without spaces`);

export const ProviderName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'provider is a lowercase name such as "lab", "postgres" or "redis"');

export const Scope = z
  .object({
    sessionId: token('scope.sessionId').optional(),
    tokenId: token('scope.tokenId').optional(),
    deviceId: token('scope.deviceId').optional(),
    credentialId: token('scope.credentialId').optional(),
  })
  .strict();
export type Scope = z.infer<typeof Scope>;

export const IdentitySignal = z
  .object({
    signalId: token('signalId'),
    provider: ProviderName,
    identityId: token('identityId'),
    identityKind: IdentityKind,
    trigger: Trigger,
    confidence: z.number().min(0, 'confidence is between 0 and 1').max(1, 'confidence is between 0 and 1'),
    riskScore: z.number().int('riskScore is a whole number').min(0, 'riskScore is 0..100').max(100, 'riskScore is 0..100'),
    assetCriticality: Level,
    privilegeLevel: Level,
    scope: Scope.optional(),
    source: z.string().min(1, 'source names the detection that raised the signal').max(200),
    observedAt: z.iso.datetime({ offset: true, message: 'observedAt is an ISO-8601 timestamp' }),
  })
  .strict();
export type IdentitySignal = z.infer<typeof IdentitySignal>;

export const Target = z.object({ provider: ProviderName, identityId: token('identityId'), kind: IdentityKind }).strict();
export type Target = z.infer<typeof Target>;

export const SUPPRESSION_ACTIONS = ['revoke-sessions', 'revoke-tokens', 'block-high-risk-apis', 'force-step-up'] as const;
export const SuppressionAction = z.enum(SUPPRESSION_ACTIONS);
export type SuppressionAction = z.infer<typeof SuppressionAction>;

export const EVIDENCE_KINDS = ['auth-events', 'sessions', 'token-metadata', 'grants', 'config-snapshot'] as const;
export const EvidenceKind = z.enum(EVIDENCE_KINDS);
export type EvidenceKind = z.infer<typeof EvidenceKind>;

export const STAGES = ['restrict', 'rotate', 'disable'] as const;
export const StageName = z.enum(STAGES);
export type StageName = z.infer<typeof StageName>;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds in a duration that `Duration` accepted. */
export function durationMs(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d);
  if (!m) throw new TypeError(`bad duration ${d}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** Durations are written the way Temporal reads them: "500ms", "30s", "10m", "4h", "2d". */
export const Duration = z.string().regex(/^\d{1,9}(ms|s|m|h|d)$/, 'a duration is a number and a unit: 500ms, 30s, 10m, 4h or 2d');

/** A duration with a sane upper bound: a typo such as 200000000d must not wedge a containment. */
export const BoundedDuration = (max: string, what: string) =>
  Duration.refine((d) => !/^\d{1,9}(ms|s|m|h|d)$/.test(d) || durationMs(d) <= durationMs(max), { message: `${what} is at most ${max}` });

/** What must happen before a stage runs. */
export const Gate = z.discriminatedUnion('type', [
  z.object({ type: z.literal('timer'), after: BoundedDuration('30d', 'a timer') }).strict(),
  /** `approvers` distinct principals must approve (the two-person rule is approvers: 2). */
  z.object({ type: z.literal('approval'), approvers: z.number().int().min(1).max(5).default(1) }).strict(),
  z
    .object({
      type: z.literal('dependency-check'),
      recheckEvery: BoundedDuration('1d', 'recheckEvery').default('1m'),
      /** After this long with dependents still there, the containment asks for a human. */
      maxWait: BoundedDuration('90d', 'maxWait').default('7d'),
    })
    .strict(),
]);
export type Gate = z.infer<typeof Gate>;

export const RollbackRule = z
  .object({
    approvers: z.number().int().min(1).max(5).default(1),
    /** The rule applies once the ladder has gone past this position. */
    beyond: z.enum(['new', 'suppressed', 'restricted', 'rotated', 'disabled']).default('restricted'),
  })
  .strict();
export type RollbackRule = z.infer<typeof RollbackRule>;

export const StagePlan = z
  .object({
    stage: StageName,
    gate: Gate,
    /** restrict only: the grants the identity keeps (the approved minimum), in the provider's own notation. */
    keep: z.array(z.string().min(1)).optional(),
  })
  .strict();
export type StagePlan = z.infer<typeof StagePlan>;

export const Plan = z
  .object({
    rule: z.string().min(1),
    policyVersion: z.string().min(1),
    /** Higher is harsher; a joining signal escalates only to a harsher plan. */
    severity: z.number().int().min(0).max(100),
    suppress: z.array(SuppressionAction),
    evidence: z.array(EvidenceKind),
    stages: z.array(StagePlan),
    /** How long a finished containment stays open for rollback before it closes. */
    retainFor: BoundedDuration('400d', 'retainFor'),
    /** Distinct principals a rollback needs once the containment is past `beyond`. */
    rollback: RollbackRule.default({ approvers: 1, beyond: 'restricted' }),
    dryRun: z.boolean().default(false),
  })
  .strict()
  .superRefine((plan, ctx) => {
    const order = plan.stages.map((s) => STAGES.indexOf(s.stage));
    if (order.some((v, i) => i > 0 && v <= order[i - 1]!)) {
      ctx.addIssue({ code: 'custom', path: ['stages'], message: 'stages run in the order restrict → rotate → disable, each at most once' });
    }
    if (new Set(plan.suppress).size !== plan.suppress.length) {
      ctx.addIssue({ code: 'custom', path: ['suppress'], message: 'a suppression action is listed twice' });
    }
  });
export type Plan = z.infer<typeof Plan>;

export const COMMANDS = ['advance', 'hold', 'resume', 'abort', 'rollback', 'dependencies-cleared'] as const;
export const CommandType = z.enum(COMMANDS);
export type CommandType = z.infer<typeof CommandType>;

/** Commands as v2 took them, with a self-declared `by`: only containments started on v2 replay them. */
export const LegacyOperatorCommand = z
  .object({
    type: CommandType,
    by: z.string().min(1, 'a command names who gives it ("by")').max(200),
    reason: z.string().min(1, 'a command says why ("reason")').max(2000),
  })
  .strict();
export type LegacyOperatorCommand = z.infer<typeof LegacyOperatorCommand>;

/**
 * An operator command. Who gives it is never said here: `token` is the operator's OIDC access
 * token sealed (JWE) to the workers' key together with this command, so history holds only
 * ciphertext and a copied token cannot carry another command. `gate` names the gate an advance
 * answers (from `describe`), so a repeated or late click cannot pass a later gate.
 */
export const OperatorCommand = z
  .object({
    type: CommandType,
    reason: z.string().min(1, 'a command says why ("reason")').max(2000, 'reason is at most 2000 characters'),
    gate: z.string().regex(/^[a-z-]+#\d{1,6}$/, 'gate is the id describe shows, e.g. "rotate#3"').optional(),
    token: z.string().min(1).max(16_384, 'the sealed token is at most 16 KiB').optional(),
  })
  .strict();
export type OperatorCommand = z.infer<typeof OperatorCommand>;

/** What a sealed token is bound to: one command on one containment. */
export const CommandBinding = z
  .object({ workflowId: z.string(), type: CommandType, gate: z.string().optional(), reason: z.string() })
  .strict();
export type CommandBinding = z.infer<typeof CommandBinding>;

export const CORDON_ROLES = ['responder', 'lead'] as const;
export const CordonRole = z.enum(CORDON_ROLES);
export type CordonRole = z.infer<typeof CordonRole>;

/** A verified operator: what the token proved, never the token. */
export const Principal = z
  .object({
    iss: z.string(),
    sub: z.string(),
    username: z.string(),
    roles: z.array(CordonRole),
    jti: z.string(),
    /** Expiry, seconds since the epoch. */
    exp: z.number(),
  })
  .strict();
export type Principal = z.infer<typeof Principal>;

/** The verifier's answer: a principal, or why not (with who the token claimed to be, unverified). */
export const Verdict = z.discriminatedUnion('ok', [
  /** `seal` identifies this one sealed command (its nonce), so a copy of it replays nothing. */
  z.object({ ok: z.literal(true), principal: Principal, seal: z.string() }).strict(),
  z.object({ ok: z.literal(false), reason: z.string(), claimed: z.string().optional() }).strict(),
]);
export type Verdict = z.infer<typeof Verdict>;

export const STATUSES = ['suppressing', 'active', 'held', 'watching', 'contained', 'needs-attention', 'aborted', 'rolled-back'] as const;
export const Status = z.enum(STATUSES);
export type Status = z.infer<typeof Status>;

/** Where the identity stands on the ladder (the search attribute CordonStage). */
export const LADDER_POSITIONS = ['new', 'suppressed', 'restricted', 'rotated', 'disabled'] as const;
export const LadderPosition = z.enum(LADDER_POSITIONS);
export type LadderPosition = z.infer<typeof LadderPosition>;

export const Outcome = z.enum(['done', 'unchanged', 'failed', 'not-supported', 'would-do', 'skipped', 'rejected']);
export type Outcome = z.infer<typeof Outcome>;

/**
 * Non-secret facts a reversible step needs to be undone exactly (the connection limit before a
 * login block, the required actions before step-up). Scalars only; lists are JSON-encoded strings.
 */
export const Receipt = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]));
export type Receipt = z.infer<typeof Receipt>;

/** What a provider says back after an action; never carries secret material. */
export const ActionResult = z
  .object({
    changed: z.boolean(),
    detail: z.string(),
    /** When the provider acknowledged it (the activity's clock; workflow time is when the result was processed). */
    at: z.string().optional(),
    /** What undoing this action needs (kept by the workflow, handed back to lift or rotate). */
    receipt: Receipt.optional(),
  })
  .strict();
export type ActionResult = z.infer<typeof ActionResult>;

export const ActionRecord = z
  .object({
    at: z.string(),
    action: z.string(),
    actor: z.string(),
    outcome: Outcome,
    detail: z.string(),
    before: z.unknown().optional(),
    after: z.unknown().optional(),
    /** The verified operator behind a command (never a token). */
    principal: Principal.omit({ roles: true }).optional(),
  })
  .strict();
export type ActionRecord = z.infer<typeof ActionRecord>;

/** Evidence from a provider, or older action records moved out of the workflow's state. */
export const RecordKind = z.union([EvidenceKind, z.literal('archive')]);
export type RecordKind = z.infer<typeof RecordKind>;

export const EvidenceRef = z
  .object({ kind: RecordKind, uri: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int() })
  .strict();
export type EvidenceRef = z.infer<typeof EvidenceRef>;

export const SecretRef = z.object({ sink: z.string(), ref: z.string(), fingerprint: z.string() }).strict();
export type SecretRef = z.infer<typeof SecretRef>;

export const Dependent = z.object({ name: z.string(), address: z.string().optional(), lastSeen: z.string().optional() }).strict();
export type Dependent = z.infer<typeof Dependent>;

/** A suppression's result: the sessions it ended go to evidence (by hash) and are never counted as dependents. */
export const SuppressionResult = ActionResult.extend({
  ended: z.array(Dependent).optional(),
  evidence: EvidenceRef.optional(),
}).strict();
export type SuppressionResult = z.infer<typeof SuppressionResult>;

/** Read-only view of an identity, taken before a stage so that rollback can restore it exactly. */
export const IdentitySnapshot = z
  .object({
    exists: z.boolean(),
    enabled: z.boolean(),
    grants: z.array(z.string()),
    sessions: z.number().int(),
  })
  .strict();
export type IdentitySnapshot = z.infer<typeof IdentitySnapshot>;

export const PendingDecision = z
  .object({ kind: z.enum(['approval', 'dependencies', 'resume']), stage: StageName.optional(), detail: z.string() })
  .strict();
export type PendingDecision = z.infer<typeof PendingDecision>;

export const WAITING_FOR = ['approval', 'dependencies', 'timer', 'hold', 'attention', 'none'] as const;
export const WaitingFor = z.enum(WAITING_FOR);
export type WaitingFor = z.infer<typeof WaitingFor>;

/** What the ladder waits for now; `gate` is the id an advance must name to answer it. */
export const Waiting = z
  .object({
    for: WaitingFor,
    gate: z.string(),
    stage: StageName.optional(),
    since: z.string(),
    deadline: z.string().optional(),
    detail: z.string(),
    approversNeeded: z.number().int().optional(),
    approvedBy: z.array(z.object({ sub: z.string(), username: z.string(), at: z.string() })).optional(),
  })
  .strict();
export type Waiting = z.infer<typeof Waiting>;

export const ContainmentState = z.object({
  containmentId: z.string(),
  target: Target,
  status: Status,
  position: LadderPosition,
  plan: Plan,
  signals: z.array(z.object({ signalId: z.string(), trigger: Trigger, confidence: z.number(), receivedAt: z.string() })),
  actions: z.array(ActionRecord),
  evidence: z.array(EvidenceRef),
  suppressedAt: z.string().optional(),
  startedAt: z.string(),
  pendingDecision: PendingDecision.optional(),
  nextDeadline: z.string().optional(),
  /** What rollback would need: grants before restrict, enabled flag before disable, rotated credential. */
  receipts: z.object({
    grantsBefore: z.array(z.string()).optional(),
    enabledBefore: z.boolean().optional(),
    rotated: SecretRef.optional(),
    /** Receipts of reversible suppressions, by action (v3). */
    suppressed: z.record(z.string(), Receipt).optional(),
    /** Rollback steps already undone (v3): a retried rollback redoes only the rest. */
    undone: z.array(z.string()).optional(),
    /** Sessions suppression ended (v3): never counted as dependents. */
    ended: z.array(Dependent).optional(),
  }),
  closedReason: z.string().optional(),
  /** v3: the approved policy in force (its rules through the `policy` query). */
  policy: z.object({ version: z.string(), sha256: z.string() }).optional(),
  waiting: Waiting.optional(),
  /** v3: pending approvals of a rollback that needs more than one principal. */
  rollbackApprovals: z.array(z.object({ sub: z.string(), username: z.string(), at: z.string() })).optional(),
  /** v3: how many signals joined in all (older ones are only counted); how many runs (continue-as-new). */
  signalCount: z.number().int().optional(),
  run: z.number().int().optional(),
  /** v3: action records moved out of state to the evidence store, by hash. */
  archived: z.array(EvidenceRef).optional(),
  /** v3, in the result only: short hashes of every signal id the containment saw. */
  seen: z.array(z.string()).optional(),
  /** v3: since when the containment has stood as it does (its stage, status and what it waits for): CordonStageSince. */
  since: z.string().optional(),
  /** v3: the containment this one follows, when a signal arrived while it closed. */
  follows: z.object({ runId: z.string(), closedReason: z.string() }).optional(),
});
export type ContainmentState = z.infer<typeof ContainmentState>;

/** Turns a zod error into one line per problem, naming the field: the message a caller sees. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length ? i.path.join('.') : '(input)'}: ${i.message}`)
    .join('; ');
}
