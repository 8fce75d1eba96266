// Routes that need no token: health and readiness, Cordon's SET keys and SSF transmitter
// metadata, the push endpoint for SETs (authenticated by their signature) and the OpenAPI
// document itself. Declared like every other route, so they are in the document too.
import type { Client } from '@temporalio/client';
import type { JWK } from 'jose';
import { z } from 'zod';
import { readSealPublicKey } from '../activities/command-seal';
import type { CordonConfig } from '../activities/config';
import { PUSH_DELIVERY, PushErrorCode, SET_MEDIA_TYPE } from '../workflows/ssf-events';
import { route, type RouteSpec } from './routes';
import type { SetReceiver } from './ssf-receiver';

const PushError = z.object({ err: z.union([PushErrorCode, z.literal('temporarily_unavailable')]), description: z.string() });
const Jwks = z.object({ keys: z.array(z.object({ kty: z.string(), kid: z.string().optional(), alg: z.string().optional(), use: z.string().optional() }).loose()) });
const SsfConfiguration = z.object({
  spec_version: z.string(),
  issuer: z.string(),
  jwks_uri: z.string(),
  delivery_methods_supported: z.array(z.string()),
  default_subjects: z.enum(['ALL', 'NONE']),
  events_supported: z.array(z.string()),
});
const Readiness = z.object({ status: z.enum(['ready', 'not-ready']), checks: z.record(z.string(), z.string()) });

export function metaRoutes(d: { client: Client; config: CordonConfig; receiver: SetReceiver; signingKey: JWK; issuer: () => string; openapi: () => unknown }): RouteSpec[] {
  const free = { access: 'none' as const, rateLimited: false };
  return [
    route({ ...free, method: 'GET', path: '/healthz', operationId: 'health', summary: 'The process is up', tag: 'operations', responses: { 200: { description: 'up', schema: z.object({ status: z.literal('ok') }) } }, handle: async () => ({ status: 200, body: { status: 'ok' } }) }),
    route({
      ...free,
      method: 'GET',
      path: '/readyz',
      operationId: 'readiness',
      summary: 'Temporal answers, an OIDC issuer is configured and a worker has published its sealing key',
      tag: 'operations',
      responses: { 200: { description: 'ready', schema: Readiness }, 503: { description: 'not ready, with why', schema: Readiness } },
      handle: async () => {
        const checks: Record<string, string> = {};
        try {
          await d.client.connection.withDeadline(Date.now() + 2000, () => d.client.workflowService.getSystemInfo({}));
          checks.temporal = 'ok';
        } catch (err) {
          checks.temporal = `unreachable: ${(err as Error).message.slice(0, 200)}`;
        }
        checks.oidc = d.config.oidc.issuer ? 'ok' : 'no CORDON_OIDC_ISSUER: every token is refused';
        try {
          readSealPublicKey(d.config.dataDir);
          checks.sealKey = 'ok';
        } catch (err) {
          checks.sealKey = (err as Error).message;
        }
        const ready = Object.values(checks).every((v) => v === 'ok');
        return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not-ready', checks } };
      },
    }),
    route({ ...free, method: 'GET', path: '/openapi.json', operationId: 'openapi', summary: 'This document', tag: 'operations', responses: { 200: { description: 'OpenAPI 3.1', schema: z.record(z.string(), z.unknown()) } }, handle: async () => ({ status: 200, body: d.openapi() }) }),
    route({
      ...free,
      method: 'GET',
      path: '/.well-known/jwks.json',
      operationId: 'jwks',
      summary: "Cordon's SET signing keys (public)",
      tag: 'shared-signals',
      responses: { 200: { description: 'JWK Set', schema: Jwks } },
      handle: async () => ({ status: 200, body: { keys: [d.signingKey] } }),
    }),
    route({
      ...free,
      method: 'GET',
      path: '/.well-known/ssf-configuration',
      operationId: 'ssfConfiguration',
      summary: 'SSF 1.0 transmitter metadata (receivers are configured on Cordon; there is no stream management API)',
      tag: 'shared-signals',
      responses: { 200: { description: 'transmitter metadata', schema: SsfConfiguration } },
      handle: async () => ({
        status: 200,
        body: {
          spec_version: '1_0',
          issuer: d.issuer(),
          jwks_uri: `${d.issuer()}/.well-known/jwks.json`,
          delivery_methods_supported: [PUSH_DELIVERY],
          default_subjects: 'ALL',
          events_supported: ['https://schemas.openid.net/secevent/caep/event-type/session-revoked', 'https://schemas.openid.net/secevent/caep/event-type/credential-change', 'https://schemas.openid.net/secevent/risc/event-type/account-disabled'],
        },
      }),
    }),
    route({
      method: 'POST',
      path: '/ssf/events',
      operationId: 'receiveSet',
      summary: 'RFC 8935 push: a signed SET from a configured transmitter',
      tag: 'shared-signals',
      access: 'set',
      body: z.string(),
      bodyMediaType: SET_MEDIA_TYPE,
      responses: {
        202: { description: 'acknowledged (acted on, recorded, or a jti already received)' },
        400: { description: 'refused, with the RFC 8935 error code', schema: PushError },
        413: { description: 'the SET is too large', schema: PushError },
        415: { description: `not ${SET_MEDIA_TYPE}`, schema: PushError },
        429: { description: 'too many SETs from this address', schema: PushError },
        503: { description: "the transmitter's keys could not be fetched: retry", schema: PushError },
      },
      handle: async ({ body, req }) => {
        const a = await d.receiver.receive(body);
        (req as { ssfOutcome?: unknown }).ssfOutcome = a.status === 202 ? { transmitter: a.transmitter, event: a.event, outcome: a.outcome } : { transmitter: a.transmitter, refused: a.err };
        return a.status === 202 ? { status: 202 } : { status: a.status, body: { err: a.err, description: a.description } };
      },
    }),
  ];
}
