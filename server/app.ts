// Cordon's HTTP server. Fastify because it is small, well kept and already here (the development
// issuer runs on it): per-route body limits and content-type parsers, a hook order that lets
// authentication run on headers before a body is read, and an official rate-limit plugin.
// Requests are validated with the routes' zod schemas, not fastify's JSON Schema validator, so
// a refusal names every field exactly as the CLI and the library do.
import rateLimit from '@fastify/rate-limit';
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { JWK } from 'jose';
import type { z } from 'zod';
import type { CordonConfig } from '../activities/config';
import type { OperatorVerifier } from '../activities/operator-auth';
import type { SsfSettings } from '../activities/ssf-config';
import { CordonInputError } from '../client/containments';
import { SET_MEDIA_TYPE } from '../workflows/ssf-events';
import { apiRoutes } from './api';
import { bearerAuth, isRefusal } from './auth';
import { metaRoutes } from './meta-routes';
import { openApiDocument } from './openapi';
import { fastifyPath, type Caller, type RouteSpec } from './routes';
import { SetReceiver } from './ssf-receiver';

export interface ServerDeps {
  client: Client;
  config: CordonConfig;
  verifier: OperatorVerifier;
  ssf: SsfSettings;
  /** Cordon's public SET signing key. */
  signingKey: JWK;
  /** Where access log lines go (default: one JSON line on stdout). Never given a token. */
  accessLog?: (entry: Record<string, unknown>) => void;
  /** How long a SET may be in flight (default: the configured maximum age). */
  ssfMaxAgeMs?: number;
}

export interface CordonServer {
  app: FastifyInstance;
  routes: RouteSpec[];
  /** Every method and path fastify registered (the OpenAPI test compares them with the document). */
  registered: { method: string; url: string }[];
  openapi(): Record<string, unknown>;
}

const callers = new WeakMap<FastifyRequest, Caller>();
const isSsf = (req: FastifyRequest) => req.url.startsWith('/ssf/');
const VERSION = '0.1.0';

/** One line per problem, with where it was: params.id, query.limit, body.confidence. */
function issuesOf(where: string, error: z.ZodError) {
  return error.issues.map((i) => ({ path: [where, ...i.path].join('.'), message: i.message }));
}

export async function buildServer(d: ServerDeps): Promise<CordonServer> {
  const { config } = d;
  const app = Fastify({ logger: false, bodyLimit: config.http.bodyLimit, return503OnClosing: true });
  const registered: { method: string; url: string }[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') registered.push({ method: m, url: r.url });
  });
  app.addContentTypeParser(SET_MEDIA_TYPE, { parseAs: 'string' }, (_req, body, done) => done(null, body));
  const log = d.accessLog ?? ((e) => process.stdout.write(`${JSON.stringify(e)}\n`));
  const auth = bearerAuth(d.verifier, config.intakeRole);

  await app.register(rateLimit, {
    global: true,
    hook: 'preHandler', // after authentication: the limit is per caller, not per address
    max: config.http.ratePerMinute,
    timeWindow: 60_000,
    keyGenerator: (req) => {
      const c = callers.get(req);
      return c ? `sub:${c.principal.iss} ${c.principal.sub}` : `ip:${req.ip}`;
    },
    errorResponseBuilder: (_req, ctx) => ({ statusCode: 429, error: 'rate_limited', message: `more than ${ctx.max} requests a minute from this caller: retry in ${ctx.after}` }),
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err instanceof CordonInputError ? 400 : err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    const code = status === 413 ? 'too_large' : status === 415 ? 'unsupported_media_type' : status === 429 ? 'rate_limited' : status === 400 ? 'invalid_request' : status === 500 ? 'internal' : 'refused';
    const message = status === 500 ? 'internal error (see the server log)' : err.message;
    if (status === 500) process.stderr.write(`cordon http: ${req.method} ${req.routeOptions.url ?? '?'} failed: ${err.message}\n`);
    if (isSsf(req)) return reply.code(status).send({ err: status === 429 ? 'access_denied' : 'invalid_request', description: message });
    return reply.code(status).send({ error: code, message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(isSsf(req) ? { err: 'invalid_request', description: 'no such endpoint' } : { error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` }));

  app.addHook('onResponse', async (req, reply) => {
    const c = callers.get(req);
    log({
      at: new Date().toISOString(),
      id: req.id,
      method: req.method,
      route: req.routeOptions.url ?? null,
      path: req.url.split('?')[0],
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ip: req.ip,
      ...(c ? { caller: c.principal.username, sub: c.principal.sub } : {}),
      ...((req as { ssfOutcome?: object }).ssfOutcome ?? {}),
    });
  });

  const receiver = new SetReceiver(d.ssf, d.client, config.taskQueue, d.ssfMaxAgeMs ?? config.ssf.maxAgeMs);
  let doc: Record<string, unknown> | undefined;
  const routes: RouteSpec[] = [
    ...apiRoutes(d.client, config),
    ...metaRoutes({ client: d.client, config, receiver, signingKey: d.signingKey, issuer: () => config.ssf.issuer, openapi: () => (doc ??= openApiDocument(routes, { version: VERSION, serverUrl: config.ssf.issuer })) }),
  ];

  for (const spec of routes) {
    const access = spec.access;
    app.route({
      method: spec.method,
      url: fastifyPath(spec.path),
      ...(spec.rateLimited === false ? { config: { rateLimit: false } } : {}),
      onRequest:
        access === 'intake' || access === 'reader' || access === 'operator'
          ? async (req, reply) => {
              const r = await auth(access, req.headers.authorization);
              if (isRefusal(r)) return reply.code(r.status).header('www-authenticate', r.challenge).send({ error: r.error, message: r.message });
              callers.set(req, r);
            }
          : undefined,
      handler: async (req, reply) => {
        const media = spec.bodyMediaType ?? 'application/json';
        if (spec.body && (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() !== media) {
          const message = `the body must be ${media}`;
          return reply.code(415).send(isSsf(req) ? { err: 'invalid_request', description: message } : { error: 'unsupported_media_type', message });
        }
        const issues: { path: string; message: string }[] = [];
        const parse = (where: string, schema: z.ZodType | undefined, value: unknown) => {
          if (!schema) return undefined;
          const r = schema.safeParse(value);
          if (!r.success) issues.push(...issuesOf(where, r.error));
          return r.success ? r.data : undefined;
        };
        const params = parse('params', spec.params, req.params);
        const query = parse('query', spec.query, req.query ?? {});
        const body = parse('body', spec.body, req.body);
        if (issues.length) {
          if (isSsf(req)) return reply.code(400).send({ err: 'invalid_request', description: issues.map((i) => `${i.path}: ${i.message}`).join('; ') });
          return reply.code(400).send({ error: 'invalid_request', message: issues.map((i) => `${i.path}: ${i.message}`).join('; '), issues });
        }
        const a = await spec.handle({ params, query, body, caller: callers.get(req), req, reply });
        if (a.headers) reply.headers(a.headers);
        return a.body === undefined ? reply.code(a.status).send() : reply.code(a.status).send(a.body);
      },
    });
  }
  return { app, routes, registered, openapi: () => (doc ??= openApiDocument(routes, { version: VERSION, serverUrl: config.ssf.issuer })) };
}
