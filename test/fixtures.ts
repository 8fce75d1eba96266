// Realistic inputs for tests: signals, lab identities and short-timer policies.
import { randomUUID } from 'node:crypto';
import { parsePolicy, type Policy } from '../workflows/policy';
import type { z } from 'zod';
import type { IdentitySignal, StagePlan as StagePlanSchema } from '../workflows/schemas';

/** A stage as a policy file writes it (defaults may be left out). */
type StagePlan = z.input<typeof StagePlanSchema>;
import type { LabIdentityInput } from '../activities/providers/lab';

export function signal(overrides: Partial<IdentitySignal> = {}): IdentitySignal {
  return {
    signalId: `sig-${randomUUID()}`,
    provider: 'lab',
    identityId: `svc-${randomUUID().slice(0, 8)}`,
    identityKind: 'service-account',
    trigger: 'secret-exposed',
    confidence: 0.95,
    riskScore: 90,
    assetCriticality: 'high',
    privilegeLevel: 'high',
    source: 'test-siem/rule-42',
    observedAt: new Date().toISOString(),
    ...overrides,
  };
}

export function labIdentity(overrides: Partial<LabIdentityInput> = {}): LabIdentityInput {
  const now = new Date().toISOString();
  return {
    kind: 'service-account',
    enabled: true,
    grants: ['orders:read', 'orders:write', 'payments:admin'],
    sessions: [
      { id: 'sess-attacker', device: 'curl/8.5', address: '203.0.113.7', startedAt: now },
      { id: 'sess-app', device: 'app-server', address: '10.0.0.12', startedAt: now },
    ],
    tokens: [
      { id: 'tok-refresh-1', type: 'refresh', issuedAt: now },
      { id: 'tok-access-1', type: 'access', issuedAt: now },
    ],
    credential: { id: 'cred-original', sha256: '0'.repeat(64), rotatedAt: now },
    authEvents: [{ at: now, type: 'login', address: '203.0.113.7' }],
    ...overrides,
  };
}

const stage = (s: StagePlan) => s;

/** A policy with one catch-all rule whose stages are given (short timers by default). */
export function policyWith(stages: StagePlan[], extra: Partial<Policy['rules'][number]> = {}): Policy {
  return parsePolicy({
    version: 'test-1',
    rules: [
      {
        name: 'test-ladder',
        severity: 50,
        match: {},
        suppress: ['revoke-sessions', 'revoke-tokens', 'block-high-risk-apis'],
        evidence: ['auth-events', 'sessions', 'grants'],
        stages,
        retainFor: '1h',
        ...extra,
      },
    ],
  });
}

export const timedLadder = (after = '200ms'): StagePlan[] => [
  stage({ stage: 'restrict', gate: { type: 'timer', after }, keep: ['orders:read'] }),
  stage({ stage: 'rotate', gate: { type: 'timer', after } }),
  stage({ stage: 'disable', gate: { type: 'timer', after } }),
];

export const approvalLadder = (): StagePlan[] => [
  stage({ stage: 'restrict', gate: { type: 'approval' }, keep: ['orders:read'] }),
  stage({ stage: 'rotate', gate: { type: 'approval' } }),
  stage({ stage: 'disable', gate: { type: 'approval' } }),
];

/** Polls `fn` until it returns a truthy value (real servers answer asynchronously). */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A seeded PRNG (mulberry32) in [0, 1): the same seed replays the same fuzz cases or drill faults. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Evidence captures that finished (suppression adds its own evidence of the sessions it ended). */
export const captured = (s: { actions: { action: string; outcome: string }[] }) => s.actions.filter((a) => a.action.startsWith('evidence:') && a.outcome === 'done').length;
