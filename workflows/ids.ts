// One containment per identity: the workflow id is derived from provider and identity id.
import type { Target } from './schemas';

export const TASK_QUEUE_DEFAULT = 'cordon';

export function containmentWorkflowId(target: Pick<Target, 'provider' | 'identityId'>): string {
  return `cordon/${target.provider}/${target.identityId}`;
}
