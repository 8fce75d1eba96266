// The OpenAPI 3.1 document, generated from the route declarations' zod schemas (z.toJSONSchema):
// requests as their input type, answers as their output type.
import { z } from 'zod';
import type { RouteSpec } from './routes';

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _s, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

function parameters(schema: z.ZodType | undefined, where: 'path' | 'query'): unknown[] {
  if (!schema) return [];
  const s = jsonSchema(schema, 'input') as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
  return Object.entries(s.properties ?? {}).map(([name, p]) => ({
    name,
    in: where,
    required: where === 'path' || (s.required ?? []).includes(name),
    ...(typeof p.description === 'string' ? { description: p.description } : {}),
    schema: p,
  }));
}

export function openApiDocument(routes: RouteSpec[], o: { version: string; serverUrl: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const needsToken = r.access === 'intake' || r.access === 'reader' || r.access === 'operator';
    const params = [...parameters(r.params, 'path'), ...parameters(r.query, 'query')];
    (paths[r.path] ??= {})[r.method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      ...(needsToken ? { security: [{ bearer: [] }], description: `Bearer token with the ${r.access === 'intake' ? 'intake' : r.access === 'reader' ? 'responder or lead' : 'role the command needs (responder; lead for abort and rollback)'} role.` } : { security: [] }),
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { [r.bodyMediaType ?? 'application/json']: { schema: jsonSchema(r.body, 'input') } } } } : {}),
      responses: Object.fromEntries(
        Object.entries(r.responses).map(([code, resp]) => [
          code,
          { description: resp.description, ...(resp.schema ? { content: { [resp.mediaType ?? 'application/json']: { schema: jsonSchema(resp.schema, 'output') } } } : {}) },
        ]),
      ),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Cordon',
      version: o.version,
      description: 'Signals in, containments out, operators’ commands, and OpenID Shared Signals (RFC 8935 push) in and out. Every write needs an OIDC bearer token or, for SETs, a transmitter’s signature.',
    },
    servers: [{ url: o.serverUrl }],
    paths,
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
  };
}
