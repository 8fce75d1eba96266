// The schema and policy modules for workflow code, evaluated once per workflow thread and shared by
// every containment on it. Evaluated per containment (the SDK gives each workflow its own module
// cache), they built some fifty zod schemas for each: with their garbage, about 6 ms of the
// worker's CPU per containment, a fifth of it (Redis, 8 in flight: 30.6 and 31.1 -> 24.0 ms).
//
// Preloaded (workers/worker.ts), but the modules themselves are not: the SDK deep-freezes what a
// preloaded module exports, and zod memoizes derived data on its schema instances as they parse.
// So the first containment on the thread evaluates them, and this closure, which the freeze does not
// reach, keeps them for the next. Sharing is safe: a schema is a pure function of its definition,
// and neither module reads a clock, a random number or any workflow's state when evaluated.
import type * as Schemas from './schemas';
import type * as Policies from './policy';

let schemas: typeof Schemas | undefined;
let policies: typeof Policies | undefined;

/* eslint-disable @typescript-eslint/no-require-imports -- evaluated on first use, inside a workflow (see above) */
export const sharedSchemas = (): typeof Schemas => (schemas ??= require('./schemas') as typeof Schemas);
export const sharedPolicies = (): typeof Policies => (policies ??= require('./policy') as typeof Policies);
/* eslint-enable @typescript-eslint/no-require-imports */
