// The activities a worker would run, without a worker or the SDK runtime, for provider-level tests.
import { join } from 'node:path';
import { loadConfig } from '../activities/config';
import { createContainmentActivities } from '../activities/containment';
import { EvidenceStore } from '../activities/evidence-store';
import { OperatorVerifier } from '../activities/operator-auth';
import { loadApprovedPolicy } from '../activities/policy-store';
import type { ProviderRegistry } from '../activities/providers/registry';
import { LocalVault, type SecretSink } from '../activities/secret-sink';

export function testActivities(providers: ProviderRegistry, dir: string, stores?: { evidence: EvidenceStore; secrets: SecretSink }) {
  return createContainmentActivities({
    providers,
    evidence: stores?.evidence ?? new EvidenceStore(join(dir, 'evidence')),
    secrets: stores?.secrets ?? new LocalVault(join(dir, 'vault')),
    policy: loadApprovedPolicy(),
    operators: new OperatorVerifier(loadConfig({}).oidc),
  });
}
