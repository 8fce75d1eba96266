// Playbook policy: pre-approved, versioned data that maps a signal to a plan.
// Evaluation is pure so the workflow can run it (deterministically) when a later signal joins.
import { z } from 'zod';
import {
  Duration,
  EvidenceKind,
  IdentityKind,
  IdentitySignal,
  Level,
  Plan,
  RollbackRule,
  StagePlan,
  SuppressionAction,
  Trigger,
  describeIssues,
} from './schemas';

const LEVEL_RANK = { low: 0, medium: 1, high: 2, critical: 3 } as const;

export const PolicyRule = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a rule name is lowercase letters, digits and dashes'),
    severity: z.number().int().min(0).max(100),
    match: z
      .object({
        triggers: z.array(Trigger).min(1).optional(),
        kinds: z.array(IdentityKind).min(1).optional(),
        minConfidence: z.number().min(0).max(1).default(0),
        maxConfidence: z.number().min(0).max(1).default(1),
        minCriticality: Level.optional(),
        minRiskScore: z.number().int().min(0).max(100).optional(),
      })
      .strict(),
    suppress: z.array(SuppressionAction),
    evidence: z.array(EvidenceKind),
    stages: z.array(StagePlan),
    retainFor: Duration.default('24h'),
  })
  .strict()
  .refine((r) => r.match.minConfidence <= r.match.maxConfidence, {
    path: ['match'],
    message: 'minConfidence must not exceed maxConfidence',
  });
export type PolicyRule = z.infer<typeof PolicyRule>;

export const Policy = z
  .object({
    version: z.string().min(1, 'a policy has a version').max(100),
    /** Distinct principals a rollback needs once a containment is past a position (two-person rule). */
    rollback: RollbackRule.default({ approvers: 1, beyond: 'restricted' }),
    /** Every approval gate on an identity of critical asset criticality needs this many distinct approvers. */
    criticalApprovers: z.number().int().min(1).max(5).default(1),
    /** Rules are tried in order; the first that matches decides. The last must match everything. */
    rules: z.array(PolicyRule).min(1, 'a policy has at least one rule'),
  })
  .strict()
  .superRefine((policy, ctx) => {
    const names = new Set<string>();
    policy.rules.forEach((rule, i) => {
      if (names.has(rule.name)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `rule name "${rule.name}" is used twice` });
      names.add(rule.name);
      // Reuse the plan's own checks (stage order, duplicates) so a bad rule fails here, not mid-incident.
      const probe = Plan.safeParse({ ...planFields(rule), rule: rule.name, policyVersion: policy.version });
      if (!probe.success) {
        for (const issue of probe.error.issues) ctx.addIssue({ code: 'custom', path: ['rules', i, ...issue.path], message: issue.message });
      }
    });
    const last = policy.rules[policy.rules.length - 1];
    const m = last?.match;
    if (m && (m.triggers || m.kinds || m.minConfidence > 0 || m.maxConfidence < 1 || m.minCriticality || m.minRiskScore !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['rules', policy.rules.length - 1, 'match'], message: 'the last rule must match every signal (an empty match), so no signal is left without a plan' });
    }
  });
export type Policy = z.infer<typeof Policy>;

function planFields(rule: PolicyRule) {
  return { severity: rule.severity, suppress: rule.suppress, evidence: rule.evidence, stages: rule.stages, retainFor: rule.retainFor };
}

export class PolicyError extends Error {
  override name = 'PolicyError';
}

/** Validates a policy document; throws a PolicyError naming every problem. */
export function parsePolicy(input: unknown): Policy {
  const result = Policy.safeParse(input);
  if (!result.success) throw new PolicyError(`invalid policy: ${describeIssues(result.error)}`);
  return result.data;
}

export function ruleMatches(rule: PolicyRule, s: IdentitySignal): boolean {
  const m = rule.match;
  if (m.triggers && !m.triggers.includes(s.trigger)) return false;
  if (m.kinds && !m.kinds.includes(s.identityKind)) return false;
  if (s.confidence < m.minConfidence || s.confidence > m.maxConfidence) return false;
  if (m.minCriticality && LEVEL_RANK[s.assetCriticality] < LEVEL_RANK[m.minCriticality]) return false;
  if (m.minRiskScore !== undefined && s.riskScore < m.minRiskScore) return false;
  return true;
}

export function evaluatePolicy(policy: Policy, signal: IdentitySignal, options: { dryRun?: boolean } = {}): Plan {
  const rule = policy.rules.find((r) => ruleMatches(r, signal));
  if (!rule) throw new PolicyError('no rule matched: the policy must end with a catch-all rule'); // unreachable for a parsed policy
  const plan = Plan.parse({ ...planFields(rule), rule: rule.name, policyVersion: policy.version, dryRun: options.dryRun ?? false, rollback: policy.rollback });
  const critical = signal.assetCriticality === 'critical' ? policy.criticalApprovers : 1;
  if (critical > 1) {
    plan.stages = plan.stages.map((s) => (s.gate.type === 'approval' ? { ...s, gate: { ...s.gate, approvers: Math.max(s.gate.approvers, critical) } } : s));
  }
  return plan;
}
