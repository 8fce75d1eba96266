// Cold time to suppress: incidents arrive on a worker that has been idle, often since it started.
// Per provider, a fresh worker process (workers/main.ts, as a host runs it) starts, sits idle for
// `idleSeconds`, then gets one signal; measured from the client's request to the provider's
// acknowledgement, like the warm figure it is compared with.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type CordonConfig } from '../activities/config';
import { signal } from '../test/fixtures';
import { containOnce, SUPPRESS_AND_PARK, type Bench } from './bench-phases';
import { benchIds, type BenchProvider } from './bench-providers';
import { percentiles, sleep, type Percentiles } from './measure';
import { WorkerProcess } from './worker-process';

export interface ColdStart extends Percentiles {
  provider: string;
  idleSeconds: number;
}

/** The environment that gives a worker process the same provider connections as `config`. */
function providerEnv(c: CordonConfig): Record<string, string> {
  const k = c.keycloak;
  return {
    CORDON_LAB_FILE: c.labFile,
    ...(c.postgresUrl ? { CORDON_POSTGRES_URL: c.postgresUrl } : {}),
    ...(c.redisUrl ? { CORDON_REDIS_URL: c.redisUrl } : {}),
    ...(k
      ? { CORDON_KEYCLOAK_URL: k.url, CORDON_KEYCLOAK_REALM: k.realm, CORDON_KEYCLOAK_CLIENT_ID: k.clientId, CORDON_KEYCLOAK_CLIENT_SECRET: k.clientSecret, CORDON_KEYCLOAK_HIGH_RISK_ROLES: (k.highRiskRoles ?? []).join(',') }
      : {}),
  };
}

export async function coldStart(b: Bench, provider: BenchProvider, runs: number, idleSeconds: number): Promise<ColdStart> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const name = `cold-${provider.name}-${i}`;
    const dataDir = join(b.root, name);
    mkdirSync(dataDir, { recursive: true });
    const policyFile = join(dataDir, 'policy.json');
    writeFileSync(policyFile, JSON.stringify(SUPPRESS_AND_PARK));
    const config = provider.configure({ ...loadConfig({ CORDON_DATA_DIR: dataDir, ...b.issuer.env, CORDON_POLICY: policyFile }), taskQueue: `bench-${name}` });
    const [id] = benchIds(provider, [`bench-${name}`]);
    await provider.seed(config, [id!]);
    const env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TEMPORAL_|CORDON_)/.test(k))),
      ...b.issuer.env,
      ...providerEnv(config),
      TEMPORAL_ADDRESS: b.address,
      TEMPORAL_NAMESPACE: b.namespace,
      CORDON_DATA_DIR: dataDir,
      CORDON_TASK_QUEUE: config.taskQueue,
      CORDON_POLICY: policyFile,
      CORDON_METRICS_PORT: '0',
      CORDON_LOG_LEVEL: 'WARN',
    };
    const worker = new WorkerProcess(env, join(b.root, `${name}.log`), (t) => b.progress.note(`bench: ${t}`), name);
    try {
      await worker.start();
      b.progress.update(`cold start (${provider.name})`, i, runs, `idle ${idleSeconds} s`);
      await sleep(idleSeconds * 1000);
      const r = await containOnce(b.client, config.taskQueue, signal({ ...provider.signal, identityId: id! }));
      samples.push(r.tts);
      b.progress.update(`cold start (${provider.name})`, i + 1, runs, `idle ${idleSeconds} s`);
    } finally {
      await worker.stop();
    }
  }
  return { provider: provider.name, idleSeconds, ...percentiles(samples) };
}
