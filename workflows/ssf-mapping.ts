// How a verified SET becomes a Cordon signal: validated data next to the policy, per transmitter.
// An event type the mapping does not name, or a subject it cannot resolve, is acknowledged and
// recorded by the receiver but never turned into a containment: acting on a guess would be worse.
import { z } from 'zod';
import { CAEP, COMPLEX_MEMBERS, RISC, SimpleSubject, subjectOf, type SetClaims, type SubjectId } from './ssf-events';
import { IdentityKind, IdentitySignal, Level, ProviderName, Trigger, describeIssues } from './schemas';

const Confidence = z.number().min(0).max(1);
const Risk = z.number().int().min(0).max(100);

/** How one simple subject format names an identity. */
const SubjectRule = z
  .object({
    provider: ProviderName,
    identityKind: IdentityKind,
    /** email only: the whole address (default) or its local part. */
    use: z.enum(['whole', 'local-part']).default('whole'),
    /** iss_sub only: the issuers whose subjects this rule accepts (default: any). */
    issuers: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();

/** One refinement of an event rule: when every listed event field has one of the values, these apply. */
const Case = z
  .object({
    when: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), z.array(z.union([z.string(), z.number(), z.boolean()])).min(1)),
    trigger: Trigger.optional(),
    confidence: Confidence.optional(),
    riskScore: Risk.optional(),
    assetCriticality: Level.optional(),
  })
  .strict();

const EventRule = z
  .object({
    trigger: Trigger,
    confidence: Confidence,
    riskScore: Risk,
    assetCriticality: Level.optional(),
    privilegeLevel: Level.optional(),
    /** With cases, an event that matches none is recorded and ignored (e.g. a user's own logout). */
    cases: z.array(Case).min(1).optional(),
  })
  .strict();

export const SsfMapping = z
  .object({
    version: z.string().min(1).max(100),
    defaults: z.object({ assetCriticality: Level.default('high'), privilegeLevel: Level.default('medium') }).strict().default({ assetCriticality: 'high', privilegeLevel: 'medium' }),
    subjects: z
      .object({
        email: SubjectRule.optional(),
        iss_sub: SubjectRule.optional(),
        opaque: SubjectRule.optional(),
        /** complex subjects: the members tried in order for the identity (their own format must be mapped). */
        complex: z.object({ identity: z.array(z.enum(COMPLEX_MEMBERS)).min(1) }).strict().optional(),
      })
      .strict(),
    /** Event type URI → rule. */
    events: z.record(z.url({ message: 'an event type is a URI' }), EventRule),
  })
  .strict();
export type SsfMapping = z.infer<typeof SsfMapping>;

export class MappingError extends Error {
  override name = 'MappingError';
}

export function parseMapping(input: unknown): SsfMapping {
  const r = SsfMapping.safeParse(input);
  if (!r.success) throw new MappingError(`invalid SSF mapping: ${describeIssues(r.error)}`);
  return r.data;
}

/**
 * The shipped mapping. A transmitter's entry in the SSF file normally brings its own (its users
 * live in a named provider); this one maps onto the lab directory.
 */
export const DEFAULT_SSF_MAPPING: SsfMapping = parseMapping({
  version: 'ssf-default-1',
  defaults: { assetCriticality: 'high', privilegeLevel: 'medium' },
  subjects: {
    email: { provider: 'lab', identityKind: 'human' },
    iss_sub: { provider: 'lab', identityKind: 'human' },
    opaque: { provider: 'lab', identityKind: 'service-account' },
    complex: { identity: ['user', 'application'] },
  },
  events: {
    [`${RISC}credential-compromise`]: { trigger: 'secret-exposed', confidence: 0.95, riskScore: 90, privilegeLevel: 'high' },
    [`${RISC}account-credential-change-required`]: { trigger: 'custom:credential-change-required', confidence: 0.8, riskScore: 70 },
    // The IdP's own risk engine ended the session; a user's logout or an admin's action is only recorded.
    [`${CAEP}session-revoked`]: { trigger: 'custom:idp-session-revoked', confidence: 0.7, riskScore: 60, cases: [{ when: { initiating_entity: ['policy', 'system'] } }] },
    [`${CAEP}risk-level-change`]: {
      trigger: 'custom:idp-risk-level',
      confidence: 0.6,
      riskScore: 55,
      cases: [{ when: { current_level: ['HIGH'] }, confidence: 0.9, riskScore: 85 }, { when: { current_level: ['MEDIUM'] } }],
    },
    [`${CAEP}token-claims-change`]: { trigger: 'custom:token-claims-change', confidence: 0.5, riskScore: 40 },
  },
});

export type Mapped =
  | { kind: 'signal'; signal: IdentitySignal; detail: string }
  | { kind: 'ignored'; detail: string };

/** Resolves the identity a subject names, or why it cannot. */
function identityOf(m: SsfMapping, subject: SubjectId): { provider: string; identityId: string; identityKind: IdentityKind; sessionId?: string } | string {
  let simple: unknown = subject;
  let sessionId: string | undefined;
  if (subject.format === 'complex') {
    const members = m.subjects.complex?.identity;
    if (!members) return 'complex subjects are not mapped for this transmitter';
    const found = members.map((k) => subject[k]).find((v) => v !== undefined);
    if (!found) return `the complex subject has none of ${members.join(', ')}`;
    simple = found;
    const session = SimpleSubject.safeParse(subject.session);
    if (session.success && session.data.format === 'opaque') sessionId = session.data.id;
  }
  const s = SimpleSubject.safeParse(simple);
  if (!s.success) return `subject format ${String((simple as { format?: unknown })?.format ?? '?').slice(0, 40)} cannot name an identity here`;
  const v = s.data;
  const rule = m.subjects[v.format];
  if (!rule) return `${v.format} subjects are not mapped for this transmitter`;
  if (v.format === 'iss_sub' && rule.issuers && !rule.issuers.includes(v.iss)) return `iss_sub subjects of ${v.iss.slice(0, 100)} are not mapped`;
  const identityId = v.format === 'email' ? (rule.use === 'local-part' ? v.email.split('@')[0]! : v.email) : v.format === 'iss_sub' ? v.sub : v.id;
  return { provider: rule.provider, identityId, identityKind: rule.identityKind, ...(sessionId ? { sessionId } : {}) };
}

const fieldAt = (o: Record<string, unknown>, path: string) => path.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), o);

/** Turns a verified SET into a signal under `signalId`, or says why it is only recorded. */
export function mapSet(m: SsfMapping, c: SetClaims, o: { signalId: string; source: string }): Mapped {
  const [type, payload] = Object.entries(c.events)[0]!;
  const rule = m.events[type];
  if (!rule) return { kind: 'ignored', detail: `event type ${type} is not mapped (${m.version}): acknowledged and recorded only` };
  let applied: Omit<z.infer<typeof Case>, 'when'> = {};
  if (rule.cases) {
    const hit = rule.cases.find((k) => Object.entries(k.when).every(([f, vals]) => vals.some((v) => v === fieldAt(payload, f))));
    if (!hit) return { kind: 'ignored', detail: `${type}: no case of the mapping matches this event (${m.version})` };
    const { when: _when, ...rest } = hit;
    applied = rest;
  }
  const who = identityOf(m, subjectOf(c));
  if (typeof who === 'string') return { kind: 'ignored', detail: who };
  const ts = typeof payload.event_timestamp === 'number' ? payload.event_timestamp : c.iat;
  const signal = IdentitySignal.safeParse({
    signalId: o.signalId,
    provider: who.provider,
    identityId: who.identityId,
    identityKind: who.identityKind,
    trigger: applied.trigger ?? rule.trigger,
    confidence: applied.confidence ?? rule.confidence,
    riskScore: applied.riskScore ?? rule.riskScore,
    assetCriticality: applied.assetCriticality ?? rule.assetCriticality ?? m.defaults.assetCriticality,
    privilegeLevel: rule.privilegeLevel ?? m.defaults.privilegeLevel,
    ...(who.sessionId ? { scope: { sessionId: who.sessionId } } : {}),
    source: o.source,
    observedAt: new Date(ts * 1000).toISOString(),
  });
  if (!signal.success) return { kind: 'ignored', detail: `the mapped signal is not valid: ${describeIssues(signal.error)}` };
  return { kind: 'signal', signal: signal.data, detail: `${type} → ${signal.data.trigger} (confidence ${signal.data.confidence}) for ${who.provider}/${who.identityId}` };
}
