// A deliberately incompatible edit of the ladder (it inspects the identity before suppressing),
// bundled only by the replay test to prove that replay catches such a change.
import { proxyActivities } from '@temporalio/workflow';
import type { ContainmentActivities } from '../../workflows/contract';
import { containment as original, type ContainmentInput } from '../../workflows/containment';

const { inspectIdentity } = proxyActivities<ContainmentActivities>({ startToCloseTimeout: '10s' });

export async function containment(input: ContainmentInput) {
  await inspectIdentity({ provider: input.signal.provider, identityId: input.signal.identityId, kind: input.signal.identityKind });
  return original(input);
}
