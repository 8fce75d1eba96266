// A route is declared once, with zod schemas for its parameters, query, body and answers: the
// server validates requests with them (400 naming every field) and the OpenAPI document is
// generated from the same declarations, so the two cannot drift apart.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Principal } from '../workflows/schemas';

/** Who may call: nobody needs a token for `none`; `set` is authenticated by the SET's own signature. */
export type Access = 'none' | 'intake' | 'reader' | 'operator' | 'set';

/** A verified caller. The token is kept only to seal it into an operator's command. */
export interface Caller {
  principal: Principal;
  issuerRoles: string[];
  token: string;
}

export interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Input<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  caller?: Caller;
  req: FastifyRequest;
  reply: FastifyReply;
}

export interface RouteSpec<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: 'GET' | 'POST';
  /** OpenAPI form: /v1/containments/{id}. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  access: Access;
  params?: P;
  query?: Q;
  body?: B;
  /** The request body's media type (default application/json). */
  bodyMediaType?: string;
  /** Rate limited per caller unless false (health, keys and metadata are not). */
  rateLimited?: boolean;
  responses: Record<number, { description: string; schema?: z.ZodType; mediaType?: string }>;
  handle(input: Input<z.output<P>, z.output<Q>, z.output<B>>): Promise<Answer>;
}

/** Declares a route with its types inferred from its schemas. */
export function route<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(spec: RouteSpec<P, Q, B>): RouteSpec {
  return spec as unknown as RouteSpec;
}

/** /v1/containments/{id} → /v1/containments/:id (fastify's form). */
export const fastifyPath = (path: string) => path.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1');
