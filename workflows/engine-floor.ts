// The smallest useful workflow: one no-op activity. The benchmark's engine floor, and the
// harness's proof that a real server, worker and bundle work together.
import { proxyActivities } from '@temporalio/workflow';

export interface FloorActivities {
  noop(tag: string): Promise<string>;
}

const { noop } = proxyActivities<FloorActivities>({ startToCloseTimeout: '10s' });

export async function engineFloor(tag: string): Promise<string> {
  return noop(tag);
}
