// The smallest useful workflow: one no-op activity. The benchmark's engine floor, and the
// harness's proof that a real server, worker and bundle work together.
import { proxyActivities } from '@temporalio/workflow';

export interface FloorActivities {
  /** Returns its tag and the moment it ran (ms since the epoch): the floor's "acknowledgement", as a provider's is for suppression. */
  noop(tag: string): Promise<{ tag: string; at: number }>;
}

const { noop } = proxyActivities<FloorActivities>({ startToCloseTimeout: '10s' });

export async function engineFloor(tag: string): Promise<{ tag: string; at: number }> {
  return noop(tag);
}
