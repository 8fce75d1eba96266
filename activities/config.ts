// Runtime configuration from the environment, validated once at start-up. Provider admin
// credentials live in connection URLs here and are never logged (see redact()).
import { resolve } from 'node:path';
import { z } from 'zod';
import { describeIssues } from '../workflows/schemas';
import { TASK_QUEUE_DEFAULT } from '../workflows/ids';

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
  CORDON_POSTGRES_URL: z.url({ protocol: /^postgres(ql)?$/, message: 'CORDON_POSTGRES_URL is a postgres:// URL' }).optional(),
  CORDON_REDIS_URL: z.url({ protocol: /^rediss?$/, message: 'CORDON_REDIS_URL is a redis:// URL' }).optional(),
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
  postgresUrl?: string;
  redisUrl?: string;
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
    postgresUrl: e.CORDON_POSTGRES_URL,
    redisUrl: e.CORDON_REDIS_URL,
  };
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
