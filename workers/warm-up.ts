// The first workflow a worker runs costs about three times a warm one (measured: ~140 ms against
// ~50 ms to suppress): V8 runs the bundle cold, compiling Cordon's modules and the SDK's activation
// path on first use. A worker therefore runs one engine-floor workflow (a no-op activity, no
// provider, no containment) as soon as it polls, so an incident that arrives on an idle worker
// meets warm code. Best effort: on a task queue shared by several workers another worker may
// take it, and a failure only means the first containment runs cold.
import { hostname } from 'node:os';
import { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';

export type WarmUp = { ms: number; workflowId: string } | { error: string };

export async function warmUp(connection: NativeConnection, namespace: string, taskQueue: string, timeoutMs = 30_000): Promise<WarmUp> {
  const t0 = Date.now();
  const workflowId = `cordon-warm-up/${taskQueue}/${hostname()}-${process.pid}-${t0}`;
  try {
    const client = new Client({ connection, namespace });
    await client.workflow.execute('engineFloor', {
      taskQueue,
      workflowId,
      args: ['warm-up'],
      workflowExecutionTimeout: timeoutMs,
      staticSummary: 'worker warm-up: one no-op activity, so the first containment meets warm code',
    });
    return { ms: Date.now() - t0, workflowId };
  } catch (err) {
    return { error: (err as Error).message };
  }
}
