// Runtime configuration from the environment, validated once at start-up. Provider admin
// credentials live in connection URLs (and Keycloak's client secret) here and are never logged
// (see redact() and describeProviders()).
import { resolve } from 'node:path';
import { z } from 'zod';
import { describeIssues } from '../workflows/schemas';
import { TASK_QUEUE_DEFAULT } from '../workflows/ids';
import type { KeycloakOptions } from './providers/keycloak';

const REPO_ROOT = resolve(__dirname, '..');

const Env = z.object({
  CORDON_TASK_QUEUE: z.string().min(1).default(TASK_QUEUE_DEFAULT),
  CORDON_DATA_DIR: z.string().min(1).default(resolve(REPO_ROOT, '.cordon')),
  CORDON_LAB_FILE: z.string().min(1).optional(),
  CORDON_VAULT_KEY: z.string().optional(),
  CORDON_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  CORDON_POSTGRES_URL: z.url({ protocol: /^postgres(ql)?$/, message: 'CORDON_POSTGRES_URL is a postgres:// URL' }).optional(),
  CORDON_REDIS_URL: z.url({ protocol: /^rediss?$/, message: 'CORDON_REDIS_URL is a redis:// URL' }).optional(),
  CORDON_KEYCLOAK_URL: z.url({ protocol: /^https?$/, message: 'CORDON_KEYCLOAK_URL is the http(s):// base URL of Keycloak, e.g. http://127.0.0.1:8080' }).optional(),
  CORDON_KEYCLOAK_REALM: z.string().regex(/^[^/\s]+$/, 'CORDON_KEYCLOAK_REALM is a realm name').default('master'),
  CORDON_KEYCLOAK_CLIENT_ID: z.string().min(1, 'CORDON_KEYCLOAK_CLIENT_ID must not be empty').optional(),
  CORDON_KEYCLOAK_CLIENT_SECRET: z.string().min(1, 'CORDON_KEYCLOAK_CLIENT_SECRET must not be empty').optional(),
  CORDON_KEYCLOAK_HIGH_RISK_ROLES: z
    .string()
    .optional()
    .transform((v) => (v ?? '').split(',').map((g) => g.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^(realm-role:.+|client-role:[^:]+:.+|group:\/.+)$/, 'CORDON_KEYCLOAK_HIGH_RISK_ROLES lists grants: realm-role:<role>, client-role:<clientId>:<role>, group:</path>'))),
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
  metricsPort: number;
  postgresUrl?: string;
  redisUrl?: string;
  keycloak?: KeycloakOptions;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): CordonConfig {
  const parsed = Env.safeParse(env);
  if (!parsed.success) throw new Error(`invalid configuration: ${describeIssues(parsed.error)}`);
  const e = parsed.data;
  const dataDir = resolve(e.CORDON_DATA_DIR);
  return {
    repoRoot: REPO_ROOT,
    taskQueue: e.CORDON_TASK_QUEUE,
    dataDir,
    labFile: resolve(e.CORDON_LAB_FILE ?? `${dataDir}/lab/directory.json`),
    evidenceDir: `${dataDir}/evidence`,
    vaultDir: `${dataDir}/vault`,
    vaultKey: e.CORDON_VAULT_KEY,
    metricsPort: e.CORDON_METRICS_PORT,
    postgresUrl: e.CORDON_POSTGRES_URL,
    redisUrl: e.CORDON_REDIS_URL,
    keycloak: e.CORDON_KEYCLOAK_URL
      ? {
          url: e.CORDON_KEYCLOAK_URL.replace(/\/+$/, ''),
          realm: e.CORDON_KEYCLOAK_REALM,
          clientId: e.CORDON_KEYCLOAK_CLIENT_ID!,
          clientSecret: e.CORDON_KEYCLOAK_CLIENT_SECRET!,
          highRiskRoles: e.CORDON_KEYCLOAK_HIGH_RISK_ROLES,
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
