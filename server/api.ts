// The /v1 routes: signals in, containments out, operators' commands. Each is a thin layer over
// the client library (client/containments.ts), which validates again and talks to Temporal.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { z } from 'zod';
import type { CordonConfig } from '../activities/config';
import { readSealPublicKey } from '../activities/command-seal';
import { CommandRejectedError, CordonInputError, ListFilter, describeContainment, listContainments, sendCommand, submitSignal, type ContainmentSummary } from '../client/containments';
import { loadApprovedPolicy } from '../activities/policy-store';
import { evaluatePolicy } from '../workflows/policy';
import { COMMAND_ROLES } from '../workflows/roles';
import { ContainmentState, IdentitySignal, OperatorCommand, Plan } from '../workflows/schemas';
import { route, type RouteSpec } from './routes';

export const ApiError = z.object({
  error: z.string(),
  message: z.string(),
  issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

const ContainmentId = z.object({
  id: z
    .string()
    .min(1)
    .max(300)
    .regex(/^cordon(-dryrun)?\/[^/]+\/.+$/, 'id is a containment id such as cordon/lab/alice@example.com (URL-encoded in the path)'),
}).strict();

export const Accepted = z.object({
  containmentId: z.string(),
  runId: z.string(),
  signalId: z.string(),
  /** When the server accepted the signal (the intake benchmark measures from here). */
  acceptedAt: z.string(),
  /** The signal id was already seen by a closed containment: nothing changed. */
  duplicateOf: z.string().optional(),
  /**
   * The plan the approved policy gives this signal, evaluated as the worker's first step does (a
   * containment already running keeps the harsher of its plan and this one). Absent for a duplicate.
   */
  plan: Plan.optional(),
  policy: z.object({ version: z.string(), sha256: z.string() }),
});

export const ContainmentSummarySchema = z.object({
  workflowId: z.string(),
  runId: z.string(),
  executionStatus: z.string(),
  identity: z.string().optional(),
  provider: z.string().optional(),
  kind: z.string().optional(),
  stage: z.string().optional(),
  status: z.string().optional(),
  trigger: z.string().optional(),
  risk: z.number().optional(),
  startTime: z.string(),
}) satisfies z.ZodType<ContainmentSummary>;

/** `cordon list`'s filters, as query parameters. */
const ListQuery = ListFilter.omit({ open: true })
  .extend({
    open: z.enum(['true', 'false'], { message: 'open is true or false' }).transform((v) => v === 'true').optional(),
    limit: z.string().regex(/^\d{1,4}$/, 'limit is a whole number, 1 to 1000').transform(Number).pipe(z.number().int().min(1, 'limit is at least 1').max(1000, 'limit is at most 1000')).optional(),
  })
  .strict();

const CommandBody = OperatorCommand.omit({ token: true });
const CommandAnswer = z.object({ containmentId: z.string(), accepted: z.string(), status: z.string().optional(), by: z.string().optional() });

const errors = {
  400: { description: 'invalid input: every problem named', schema: ApiError },
  401: { description: 'no valid bearer token', schema: ApiError },
  403: { description: 'the caller lacks the role', schema: ApiError },
  413: { description: 'the body is too large', schema: ApiError },
  429: { description: 'too many requests from this caller', schema: ApiError },
};

export function apiRoutes(client: Client, config: CordonConfig): RouteSpec[] {
  // The same approved policy the workers load (CORDON_POLICY, or the shipped one).
  const approved = loadApprovedPolicy(config.policyFile);
  return [
    route({
      method: 'POST',
      path: '/v1/signals',
      operationId: 'submitSignal',
      summary: 'Start or join the containment of the identity a signal names (idempotent on signalId)',
      tag: 'signals',
      access: 'intake',
      body: IdentitySignal,
      responses: { 202: { description: 'accepted: the containment id and its plan', schema: Accepted }, ...errors, 415: { description: 'not JSON', schema: ApiError } },
      handle: async ({ body }) => {
        const acceptedAt = new Date().toISOString();
        const r = await submitSignal(client, body, { taskQueue: config.taskQueue });
        // Evaluated here rather than queried from the containment: a query is a worker task, and
        // intake must answer while workers are busy or down (Temporal has the signal durably).
        const plan = r.duplicateOf ? undefined : evaluatePolicy(approved.policy, r.signal);
        return {
          status: 202,
          body: { containmentId: r.workflowId, runId: r.runId, signalId: r.signal.signalId, acceptedAt, ...(r.duplicateOf ? { duplicateOf: r.duplicateOf } : {}), ...(plan ? { plan } : {}), policy: { version: approved.version, sha256: approved.sha256 } },
        };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/containments',
      operationId: 'listContainments',
      summary: 'Containments, filtered as `cordon list` filters them',
      tag: 'containments',
      access: 'reader',
      query: ListQuery,
      responses: { 200: { description: 'matching containments, newest first', schema: z.object({ containments: z.array(ContainmentSummarySchema) }) }, ...errors },
      handle: async ({ query }) => {
        const { limit, ...filter } = query;
        return { status: 200, body: { containments: await listContainments(client, filter, limit ?? 100) } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/containments/{id}',
      operationId: 'describeContainment',
      summary: 'The full state of one containment',
      tag: 'containments',
      access: 'reader',
      params: ContainmentId,
      responses: { 200: { description: 'its state: plan, actions, evidence, waiting', schema: ContainmentState }, 404: { description: 'no such containment', schema: ApiError }, ...errors },
      handle: async ({ params }) => {
        try {
          return { status: 200, body: await describeContainment(client, params.id) };
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return { status: 404, body: { error: 'not_found', message: `no containment ${params.id}` } };
          throw err;
        }
      },
    }),
    route({
      method: 'POST',
      path: '/v1/containments/{id}/commands',
      operationId: 'sendCommand',
      summary: "An operator's command; the bearer token is sealed into it, so the worker verifies it again",
      tag: 'containments',
      access: 'operator',
      params: ContainmentId,
      body: CommandBody,
      responses: {
        200: { description: 'the containment accepted the command', schema: CommandAnswer },
        404: { description: 'no running containment', schema: ApiError },
        409: { description: 'the containment refused the command now (recorded in its actions)', schema: ApiError },
        503: { description: 'no worker has published its sealing key yet', schema: ApiError },
        ...errors,
      },
      handle: async ({ params, body, caller }) => {
        const may = COMMAND_ROLES[body.type];
        if (!may.some((r) => caller!.principal.roles.includes(r))) {
          return { status: 403, body: { error: 'forbidden', message: `${body.type} needs the role ${may.join(' or ')}; ${caller!.principal.username} has ${caller!.principal.roles.join(', ') || 'none'}` } };
        }
        let sealKey;
        try {
          sealKey = readSealPublicKey(config.dataDir);
        } catch (err) {
          return { status: 503, body: { error: 'unavailable', message: (err as Error).message } };
        }
        try {
          const r = await sendCommand(client, params.id, body, { token: caller!.token, sealKey, via: 'update' });
          return { status: 200, body: { containmentId: params.id, accepted: body.type, ...r } };
        } catch (err) {
          if (err instanceof CommandRejectedError) return { status: 409, body: { error: 'refused', message: err.message } };
          if (err instanceof CordonInputError || err instanceof WorkflowNotFoundError) return { status: 404, body: { error: 'not_found', message: err.message } };
          throw err;
        }
      },
    }),
  ];
}
