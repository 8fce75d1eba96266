// Runtime configuration from the environment, validated once at start-up. Provider admin
// credentials live in connection URLs (and Keycloak's client secret) here and are never logged
// (see redact() and describeProviders()).
import { resolve } from 'node:path';
import { z } from 'zod';
import { BoundedDuration, describeIssues, durationMs } from '../workflows/schemas';
import { TASK_QUEUE_DEFAULT } from '../workflows/ids';
import type { CordonRole } from '../workflows/schemas';
import type { OidcSettings } from './operator-auth';
import type { KeycloakOptions } from './providers/keycloak';

const REPO_ROOT = resolve(__dirname, '..');

const Env = z.object({
  CORDON_TASK_QUEUE: z.string().min(1).default(TASK_QUEUE_DEFAULT),
  CORDON_DATA_DIR: z.string().min(1).default(resolve(REPO_ROOT, '.cordon')),
  CORDON_LAB_FILE: z.string().min(1).optional(),
  CORDON_VAULT_KEY: z
    .string()
    .optional()
    .refine((k) => k === undefined || (/^[A-Za-z0-9+/]+={0,2}$/.test(k.trim()) && Buffer.from(k.trim(), 'base64').length === 32), {
      message: 'CORDON_VAULT_KEY must be 32 bytes, base64-encoded (44 characters; `openssl rand -base64 32`)',
    }),
  CORDON_VAULT_KEY_FILE: z.string().min(1).optional(),
  CORDON_STATE_URL: z.url({ protocol: /^postgres(ql)?$/, message: 'CORDON_STATE_URL is a postgres:// URL' }).optional(),
  CORDON_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  // Each cached containment costs about 1-2 MB of isolate memory the SDK's default sizing does not
  // count; evicted ones replay from history when they wake (README, "Performance").
  CORDON_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).max(100_000).default(100),
  // The workflow thread's V8 old space: without a bound V8 grows it lazily to gigabytes (4 GiB
  // here) before collecting what evicted containments left. It must hold the cache: ~1 MB each.
  CORDON_WORKFLOW_HEAP_MB: z.coerce.number().int().min(128).max(16_384).default(320),
  // One engine-floor workflow at worker start, so the first containment meets warm code (workers/warm-up.ts).
  CORDON_WARM_UP: z.enum(['true', 'false'], { message: 'CORDON_WARM_UP is true or false' }).default('true'),
  // v5 containments take evidence in the task that suppresses (a local activity), which holds one
  // of the worker's 40 workflow-task slots until evidence returns: false moves it to an activity
  // of its own, for providers whose evidence is slow (an export that takes minutes).
  CORDON_EVIDENCE_IN_TASK: z.enum(['true', 'false'], { message: 'CORDON_EVIDENCE_IN_TASK is true or false' }).default('true'),
  // The SDK's promise hook records a source-mapped stack for every workflow promise, for the UI's
  // Stack Trace tab: 13-24% of the worker's CPU per containment, measured. Off unless asked for
  // (workflows/quiet-promise-stacks.ts).
  CORDON_WORKFLOW_STACK_TRACES: z.enum(['true', 'false'], { message: 'CORDON_WORKFLOW_STACK_TRACES is true or false' }).default('false'),
  CORDON_POSTGRES_URL: z.url({ protocol: /^postgres(ql)?$/, message: 'CORDON_POSTGRES_URL is a postgres:// URL' }).optional(),
  CORDON_REDIS_URL: z.url({ protocol: /^rediss?$/, message: 'CORDON_REDIS_URL is a redis:// URL' }).optional(),
  CORDON_POLICY: z.string().min(1).optional(),
  CORDON_OIDC_ISSUER: z.url({ message: 'CORDON_OIDC_ISSUER is the issuer URL, e.g. https://sso.example.com/realms/ops' }).optional(),
  CORDON_OIDC_AUDIENCE: z.string().min(1).default('cordon'),
  CORDON_OIDC_ROLES_CLAIM: z.string().regex(/^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$/, 'CORDON_OIDC_ROLES_CLAIM is a dotted claim path such as realm_access.roles').default('realm_access.roles'),
  CORDON_OIDC_JWKS_URL: z.url().optional(),
  CORDON_ROLE_RESPONDER: z.string().min(1).default('cordon-responder'),
  CORDON_ROLE_LEAD: z.string().min(1).default('cordon-lead'),
  CORDON_SECRET_READER_ROLE: z.enum(['responder', 'lead']).default('lead'),
  CORDON_SEAL_KEY_FILE: z.string().min(1).optional(),
  CORDON_DEV_ISSUER_PORT: z.coerce.number().int().min(0).max(65535).default(8237),
  CORDON_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  CORDON_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8238),
  CORDON_HTTP_BODY_LIMIT: z.coerce.number().int().min(1024, 'CORDON_HTTP_BODY_LIMIT is at least 1024 bytes').max(1_048_576, 'CORDON_HTTP_BODY_LIMIT is at most 1 MiB').default(65_536),
  CORDON_HTTP_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(600),
  CORDON_ROLE_INTAKE: z.string().min(1).default('cordon-intake'),
  CORDON_PUBLIC_URL: z.url({ message: 'CORDON_PUBLIC_URL is the URL receivers reach Cordon at, e.g. https://cordon.example.com' }).optional(),
  CORDON_SSF_FILE: z.string().min(1).optional(),
  CORDON_SSF_SIGNING_KEY_FILE: z.string().min(1).optional(),
  CORDON_SSF_MAX_AGE: BoundedDuration('30d', 'CORDON_SSF_MAX_AGE').default('12h'),
  CORDON_KEYCLOAK_URL: z.url({ protocol: /^https?$/, message: 'CORDON_KEYCLOAK_URL is the http(s):// base URL of Keycloak, e.g. http://127.0.0.1:8080' }).optional(),
  CORDON_KEYCLOAK_REALM: z.string().regex(/^[^/\s]+$/, 'CORDON_KEYCLOAK_REALM is a realm name').default('master'),
  CORDON_KEYCLOAK_CLIENT_ID: z.string().min(1, 'CORDON_KEYCLOAK_CLIENT_ID must not be empty').optional(),
  CORDON_KEYCLOAK_CLIENT_SECRET: z.string().min(1, 'CORDON_KEYCLOAK_CLIENT_SECRET must not be empty').optional(),
  CORDON_KEYCLOAK_HIGH_RISK_ROLES: z
    .string()
    .optional()
    .transform((v) => (v ?? '').split(',').map((g) => g.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^(realm-role:.+|client-role:[^:]+:.+|group:\/.+)$/, 'CORDON_KEYCLOAK_HIGH_RISK_ROLES lists grants: realm-role:<role>, client-role:<clientId>:<role>, group:</path>'))),
  CORDON_KEYCLOAK_EVIDENCE_IN_FLIGHT: z.coerce.number().int('CORDON_KEYCLOAK_EVIDENCE_IN_FLIGHT is a whole number').min(1, 'CORDON_KEYCLOAK_EVIDENCE_IN_FLIGHT is at least 1').max(256, 'CORDON_KEYCLOAK_EVIDENCE_IN_FLIGHT is at most 256').optional(), // unset: the provider's default (EVIDENCE_IN_FLIGHT)
}).superRefine((e, ctx) => {
  // Never echoes a value: the secret must not reach an error message or a log.
  if (e.CORDON_KEYCLOAK_URL && !(e.CORDON_KEYCLOAK_CLIENT_ID && e.CORDON_KEYCLOAK_CLIENT_SECRET)) {
    ctx.addIssue({ code: 'custom', path: ['CORDON_KEYCLOAK_CLIENT_ID'], message: 'CORDON_KEYCLOAK_URL needs CORDON_KEYCLOAK_CLIENT_ID and CORDON_KEYCLOAK_CLIENT_SECRET (Cordon\'s admin client)' });
  }
});

export interface CordonConfig {
  repoRoot: string;
  taskQueue: string;
  dataDir: string;
  labFile: string;
  evidenceDir: string;
  vaultDir: string;
  vaultKey?: string;
  /** A key file instead of CORDON_VAULT_KEY (checked to be mode 0600 at use). */
  vaultKeyFile?: string;
  /** Vault and evidence in PostgreSQL, shared by every worker; unset: files under dataDir. */
  stateUrl?: string;
  metricsPort: number;
  /** The worker's workflow cache: its memory bound (see README, "Performance"). */
  maxCachedWorkflows: number;
  /** The workflow thread's heap bound (MiB). */
  workflowHeapMb: number;
  /** Run one engine-floor workflow at start (workers/main.ts). */
  warmUp: boolean;
  /** v5: evidence as a local activity in the task that suppresses, or an activity of its own. */
  evidenceInTask: boolean;
  /** The `__stack_trace` query answers (the SDK's promise hook records stacks): CPU per containment. */
  workflowStackTraces: boolean;
  postgresUrl?: string;
  redisUrl?: string;
  /** The approved policy file (undefined: the shipped default). */
  policyFile?: string;
  oidc: OidcSettings;
  /** Which Cordon role may read a rotated credential from the vault. */
  secretReaderRole: CordonRole;
  sealKeyFile?: string;
  devIssuerPort: number;
  /** The HTTP API and Shared Signals endpoints (port 0: off). */
  http: { host: string; port: number; bodyLimit: number; ratePerMinute: number };
  /** The issuer role a machine client needs to submit signals. */
  intakeRole: string;
  ssf: {
    /** Transmitters Cordon trusts and receivers it pushes to (undefined: none). */
    file?: string;
    /** Cordon's issuer in the SETs it signs: its public URL (default: the loopback HTTP address). */
    issuer: string;
    signingKeyFile?: string;
    /** A SET older than this is refused (bounded by how long Temporal remembers its jti). */
    maxAgeMs: number;
  };
  keycloak?: KeycloakOptions;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): CordonConfig {
  const parsed = Env.safeParse(env);
  if (!parsed.success) throw new Error(`invalid configuration: ${describeIssues(parsed.error)}`);
  const e = parsed.data;
  // Workers sharing a vault must share its key: a key file each generated for itself would differ.
  if (e.CORDON_STATE_URL && !e.CORDON_VAULT_KEY && !e.CORDON_VAULT_KEY_FILE) {
    throw new Error('invalid configuration: CORDON_STATE_URL shares the vault between workers, so each needs the same key: set CORDON_VAULT_KEY or CORDON_VAULT_KEY_FILE');
  }
  const dataDir = resolve(e.CORDON_DATA_DIR);
  return {
    repoRoot: REPO_ROOT,
    taskQueue: e.CORDON_TASK_QUEUE,
    dataDir,
    labFile: resolve(e.CORDON_LAB_FILE ?? `${dataDir}/lab/directory.json`),
    evidenceDir: `${dataDir}/evidence`,
    vaultDir: `${dataDir}/vault`,
    vaultKey: e.CORDON_VAULT_KEY?.trim(),
    vaultKeyFile: e.CORDON_VAULT_KEY_FILE && resolve(e.CORDON_VAULT_KEY_FILE),
    stateUrl: e.CORDON_STATE_URL,
    metricsPort: e.CORDON_METRICS_PORT,
    maxCachedWorkflows: e.CORDON_MAX_CACHED_WORKFLOWS,
    workflowHeapMb: e.CORDON_WORKFLOW_HEAP_MB,
    warmUp: e.CORDON_WARM_UP === 'true',
    evidenceInTask: e.CORDON_EVIDENCE_IN_TASK === 'true',
    workflowStackTraces: e.CORDON_WORKFLOW_STACK_TRACES === 'true',
    postgresUrl: e.CORDON_POSTGRES_URL,
    redisUrl: e.CORDON_REDIS_URL,
    policyFile: e.CORDON_POLICY ? resolve(e.CORDON_POLICY) : undefined,
    oidc: {
      issuer: e.CORDON_OIDC_ISSUER,
      audience: e.CORDON_OIDC_AUDIENCE,
      rolesClaim: e.CORDON_OIDC_ROLES_CLAIM,
      roleNames: { responder: e.CORDON_ROLE_RESPONDER, lead: e.CORDON_ROLE_LEAD },
      jwksUrl: e.CORDON_OIDC_JWKS_URL,
    },
    secretReaderRole: e.CORDON_SECRET_READER_ROLE,
    sealKeyFile: e.CORDON_SEAL_KEY_FILE ? resolve(e.CORDON_SEAL_KEY_FILE) : undefined,
    devIssuerPort: e.CORDON_DEV_ISSUER_PORT,
    http: { host: e.CORDON_HTTP_HOST, port: e.CORDON_HTTP_PORT, bodyLimit: e.CORDON_HTTP_BODY_LIMIT, ratePerMinute: e.CORDON_HTTP_RATE_LIMIT },
    intakeRole: e.CORDON_ROLE_INTAKE,
    ssf: {
      file: e.CORDON_SSF_FILE ? resolve(e.CORDON_SSF_FILE) : undefined,
      issuer: (e.CORDON_PUBLIC_URL ?? `http://${e.CORDON_HTTP_HOST.includes(':') ? `[${e.CORDON_HTTP_HOST}]` : e.CORDON_HTTP_HOST}:${e.CORDON_HTTP_PORT}`).replace(/\/$/, ''),
      signingKeyFile: e.CORDON_SSF_SIGNING_KEY_FILE ? resolve(e.CORDON_SSF_SIGNING_KEY_FILE) : undefined,
      maxAgeMs: durationMs(e.CORDON_SSF_MAX_AGE),
    },
    keycloak: e.CORDON_KEYCLOAK_URL
      ? {
          url: e.CORDON_KEYCLOAK_URL.replace(/\/+$/, ''),
          realm: e.CORDON_KEYCLOAK_REALM,
          clientId: e.CORDON_KEYCLOAK_CLIENT_ID!,
          clientSecret: e.CORDON_KEYCLOAK_CLIENT_SECRET!,
          highRiskRoles: e.CORDON_KEYCLOAK_HIGH_RISK_ROLES,
          ...(e.CORDON_KEYCLOAK_EVIDENCE_IN_FLIGHT ? { evidenceInFlight: e.CORDON_KEYCLOAK_EVIDENCE_IN_FLIGHT } : {}),
        }
      : undefined,
  };
}

/** The real providers a configuration reaches, safe to print: passwords and secrets masked. */
export function describeProviders(config: CordonConfig): string[] {
  const k = config.keycloak;
  return [
    `lab (${config.labFile})`,
    config.postgresUrl && `postgres (${redact(config.postgresUrl)})`,
    config.redisUrl && `redis (${redact(config.redisUrl)})`,
    k && `keycloak (${redact(k.url)} realm=${k.realm} client=${k.clientId} secret=***)`,
  ].filter((p): p is string => Boolean(p));
}

/** A URL safe to print: the password is replaced. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable url>';
  }
}
