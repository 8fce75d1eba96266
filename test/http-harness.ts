// A real Cordon HTTP server on loopback (port 0) beside a real worker, on the run's dev server and
// development issuer, with its access log captured so tests can read it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { CordonConfig } from '../activities/config';
import { OperatorVerifier } from '../activities/operator-auth';
import { loadSsfSettings } from '../activities/ssf-config';
import { loadOrCreateSigningKey } from '../activities/ssf-keys';
import { DevIssuer } from '../client/dev-issuer';
import type { Policy } from '../workflows/policy';
import { buildServer, type CordonServer } from '../server/app';
import { isolatedConfig, testEnv, withWorker } from './harness';

let issuer: Promise<DevIssuer> | undefined;
/** A token with exactly these issuer role names (e.g. cordon-intake), from the run's development issuer. */
export async function mintToken(username: string, issuerRoles: string[], o: { ttlSeconds?: number; now?: number } = {}): Promise<string> {
  const dir = process.env.CORDON_TEST_ISSUER_DIR;
  const iss = process.env.CORDON_OIDC_ISSUER;
  if (!dir || !iss) throw new Error('no development issuer: run tests through test/run.ts');
  issuer ??= DevIssuer.open(dir);
  return (await issuer).mint({ issuer: iss, audience: process.env.CORDON_OIDC_AUDIENCE ?? 'cordon', username, roles: issuerRoles, ...o });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see Api.call
type Answer = { status: number; body: any; headers: Headers; text: string };

export interface Api {
  base: string;
  client: Client;
  config: CordonConfig;
  server: CordonServer;
  log: Record<string, unknown>[];
  /** fetch against the server with an optional bearer token and JSON body (answers are read loosely: tests assert their shapes). */
  call(method: string, path: string, o?: { token?: string; json?: unknown; body?: string; contentType?: string }): Promise<Answer>;
  /** A second server on the same configuration (a restart), for as long as `fn` runs. */
  restarted<T>(fn: (api: Pick<Api, 'base' | 'call' | 'log'>) => Promise<T>): Promise<T>;
}

export interface ApiOptions {
  policy?: Policy;
  /** The SSF file's content (transmitters, receivers); written into the data folder. */
  ssf?: unknown;
  http?: Partial<CordonConfig['http']>;
  ssfMaxAgeMs?: number;
  /** Another OIDC issuer than the run's development one (the run's Keycloak), for the server and the worker. */
  oidcIssuer?: string;
}

async function start(config: CordonConfig, o: ApiOptions, log: Record<string, unknown>[]) {
  const env = await testEnv();
  const signing = await loadOrCreateSigningKey(config.dataDir, config.ssf.signingKeyFile);
  const server = await buildServer({
    client: env.client,
    config,
    verifier: new OperatorVerifier(config.oidc),
    ssf: loadSsfSettings(config.ssf.file),
    signingKey: signing.publicJwk,
    accessLog: (e) => log.push(e),
    ssfMaxAgeMs: o.ssfMaxAgeMs,
  });
  const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  const call: Api['call'] = async (method, path, co = {}) => {
    const headers: Record<string, string> = {};
    if (co.token) headers.authorization = `Bearer ${co.token}`;
    if (co.json !== undefined || co.body !== undefined) headers['content-type'] = co.contentType ?? 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, body: co.json !== undefined ? JSON.stringify(co.json) : co.body });
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    return { status: res.status, body, headers: res.headers, text };
  };
  return { server, base, call };
}

export async function withApi<T>(o: ApiOptions, fn: (api: Api) => Promise<T>): Promise<T> {
  const config = isolatedConfig({ policy: o.policy });
  config.http = { ...config.http, port: 0, ...o.http };
  if (o.oidcIssuer) config.oidc = { ...config.oidc, issuer: o.oidcIssuer };
  if (o.ssf !== undefined) {
    const file = join(config.dataDir, 'ssf.json');
    writeFileSync(file, JSON.stringify(o.ssf));
    config.ssf = { ...config.ssf, file };
  }
  const log: Record<string, unknown>[] = [];
  const { server, base, call } = await start(config, o, log);
  // Cordon's SET issuer is its public URL: here, the address the server was given.
  config.ssf.issuer = base;
  try {
    return await withWorker(config, async ({ client }) =>
      fn({
        base,
        client,
        config,
        server,
        log,
        call,
        restarted: async (inner) => {
          const again = await start(config, o, log);
          try {
            return await inner({ base: again.base, call: again.call, log });
          } finally {
            await again.server.app.close();
          }
        },
      }),
    );
  } finally {
    await server.app.close();
  }
}
