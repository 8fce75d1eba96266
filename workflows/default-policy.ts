// The shipped playbook, as data for the worker (CORDON_POLICY unset). Outside the workflow bundle
// on purpose: parsing it at module load cost every containment ~2 ms of workflow-thread time.
import type { IdentityKind } from './schemas';
import { parsePolicy, type Policy } from './policy';

const NHI: IdentityKind[] = ['service-account', 'api-key', 'workload', 'database-role', 'oauth-client'];

/**
 * The default playbook. Low confidence only steps up and watches; high-confidence secret exposure
 * on a non-human identity gets the whole ladder on short timers; confirmed attacks on humans
 * revoke at once but wait for approval before touching the account itself.
 */
export const DEFAULT_POLICY: Policy = parsePolicy({
  version: 'default-2026-11b',
  rollback: { approvers: 2, beyond: 'restricted' },
  criticalApprovers: 2,
  rules: [
    {
      name: 'low-confidence-watch',
      severity: 10,
      match: { maxConfidence: 0.5 },
      suppress: ['force-step-up'],
      evidence: ['auth-events', 'sessions'],
      stages: [],
      retainFor: '24h',
    },
    {
      name: 'nhi-secret-exposed',
      severity: 90,
      match: { triggers: ['secret-exposed'], kinds: NHI, minConfidence: 0.8 },
      suppress: ['revoke-sessions', 'revoke-tokens', 'block-high-risk-apis'],
      evidence: ['auth-events', 'sessions', 'token-metadata', 'grants', 'config-snapshot'],
      stages: [
        { stage: 'restrict', gate: { type: 'timer', after: '0s' }, keep: [] },
        { stage: 'rotate', gate: { type: 'timer', after: '5m' } },
        { stage: 'disable', gate: { type: 'dependency-check', recheckEvery: '5m', maxWait: '7d' } },
      ],
      retainFor: '7d',
    },
    {
      name: 'nhi-anomaly',
      severity: 70,
      match: { kinds: NHI, minConfidence: 0.7 },
      suppress: ['revoke-sessions', 'revoke-tokens', 'block-high-risk-apis'],
      evidence: ['auth-events', 'sessions', 'token-metadata', 'grants', 'config-snapshot'],
      stages: [
        { stage: 'restrict', gate: { type: 'timer', after: '0s' }, keep: [] },
        { stage: 'rotate', gate: { type: 'timer', after: '15m' } },
        { stage: 'disable', gate: { type: 'approval' } },
      ],
      retainFor: '7d',
    },
    {
      // A human's session looks taken over: cut sessions and tokens, force step-up, then a human decides.
      name: 'human-session-takeover',
      severity: 65,
      match: { triggers: ['impossible-travel', 'new-device', 'unusual-token-issuance'], kinds: ['human'], minConfidence: 0.8 },
      suppress: ['revoke-sessions', 'revoke-tokens', 'force-step-up'],
      evidence: ['auth-events', 'sessions', 'token-metadata', 'grants'],
      stages: [
        { stage: 'restrict', gate: { type: 'approval' }, keep: [] },
        { stage: 'rotate', gate: { type: 'approval' } },
        { stage: 'disable', gate: { type: 'approval' } },
      ],
      retainFor: '7d',
    },
    {
      // A human account uses APIs as it never has: block the dangerous ones at once as well.
      name: 'human-api-anomaly',
      severity: 62,
      match: { triggers: ['atypical-api-pattern', 'privilege-escalation'], kinds: ['human'], minConfidence: 0.7 },
      suppress: ['revoke-sessions', 'block-high-risk-apis', 'force-step-up'],
      evidence: ['auth-events', 'sessions', 'token-metadata', 'grants'],
      stages: [
        { stage: 'restrict', gate: { type: 'approval' }, keep: [] },
        { stage: 'disable', gate: { type: 'approval' } },
      ],
      retainFor: '7d',
    },
    {
      name: 'human-high-confidence',
      severity: 60,
      match: { kinds: ['human'], minConfidence: 0.8 },
      suppress: ['revoke-sessions', 'revoke-tokens', 'force-step-up'],
      evidence: ['auth-events', 'sessions', 'token-metadata', 'grants'],
      stages: [
        { stage: 'restrict', gate: { type: 'approval' }, keep: [] },
        { stage: 'rotate', gate: { type: 'approval' } },
        { stage: 'disable', gate: { type: 'approval' } },
      ],
      retainFor: '7d',
    },
    {
      name: 'medium-confidence',
      severity: 30,
      match: {},
      suppress: ['revoke-sessions', 'force-step-up'],
      evidence: ['auth-events', 'sessions', 'grants'],
      stages: [{ stage: 'restrict', gate: { type: 'approval' }, keep: [] }],
      retainFor: '3d',
    },
  ],
});
