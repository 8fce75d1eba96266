// `cordon demo`: seeds the lab directory with a few identities and submits realistic signals,
// so a newcomer sees containments move in the Temporal UI right after `npm start`.
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { CordonConfig } from '../activities/config';
import { LabDirectory, type LabIdentityInput } from '../activities/providers/lab';
import type { IdentitySignal } from '../workflows/schemas';
import { temporalTarget } from './connection';
import { planOf, submitSignal } from './containments';
import { uiBase, viewLines } from './views';

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

const IDENTITIES: Record<string, LabIdentityInput> = {
  'svc-ci-deployer': {
    kind: 'service-account',
    grants: ['repo:read', 'repo:write', 'cloud:deploy', 'secrets:read'],
    sessions: [{ id: 's-1', device: 'python-requests/2.31', address: '198.51.100.23', startedAt: minutesAgo(3) }],
    tokens: [{ id: 't-1', type: 'refresh', issuedAt: minutesAgo(40) }],
    credential: { id: 'cred-2025-q3', sha256: 'f'.repeat(64), rotatedAt: minutesAgo(60 * 24 * 90) },
    dependents: [{ name: 'deploy pipeline (ci)', address: '10.0.4.12', lastSeen: minutesAgo(12) }],
    authEvents: [{ at: minutesAgo(3), type: 'token-exchange', address: '198.51.100.23' }],
  },
  'alice@example.com': {
    kind: 'human',
    grants: ['finance:approve', 'mail:read'],
    sessions: [
      { id: 's-2', device: 'Firefox/Linux', address: '192.0.2.10', startedAt: minutesAgo(300) },
      { id: 's-3', device: 'Chrome/Windows', address: '203.0.113.99', startedAt: minutesAgo(2) },
    ],
    tokens: [{ id: 't-2', type: 'offline', issuedAt: minutesAgo(2) }],
    authEvents: [
      { at: minutesAgo(300), type: 'login', address: '192.0.2.10' },
      { at: minutesAgo(2), type: 'login', address: '203.0.113.99' },
    ],
  },
  'bob@example.com': {
    kind: 'human',
    grants: ['wiki:edit'],
    sessions: [{ id: 's-4', device: 'Safari/iOS (new)', address: '192.0.2.44', startedAt: minutesAgo(1) }],
  },
  'key-payments-reporting': {
    kind: 'api-key',
    grants: ['payments:read', 'payments:refund'],
    sessions: [{ id: 's-5', device: 'go-http-client/2.0', address: '198.51.100.77', startedAt: minutesAgo(5) }],
    dependents: [{ name: 'nightly revenue report', lastSeen: minutesAgo(600) }],
  },
};

function demoSignal(identityId: string, s: Pick<IdentitySignal, 'identityKind' | 'trigger' | 'confidence' | 'riskScore'> & Partial<IdentitySignal>): IdentitySignal {
  return { signalId: `demo-${randomUUID()}`, provider: 'lab', identityId, assetCriticality: 'high', privilegeLevel: 'high', source: 'cordon-demo', observedAt: new Date().toISOString(), ...s };
}

export async function runDemo(client: Client, config: CordonConfig): Promise<void> {
  const lab = new LabDirectory(config.labFile);
  const existing = (await lab.read()).identities;
  await lab.seed(Object.fromEntries(Object.entries(IDENTITIES).filter(([id]) => !existing[id])));
  const signals = [
    demoSignal('svc-ci-deployer', { identityKind: 'service-account', trigger: 'secret-exposed', confidence: 0.97, riskScore: 95, source: 'secret-scanner/public-repo' }),
    demoSignal('alice@example.com', { identityKind: 'human', trigger: 'impossible-travel', confidence: 0.9, riskScore: 80, source: 'idp-risk-engine' }),
    demoSignal('bob@example.com', { identityKind: 'human', trigger: 'new-device', confidence: 0.35, riskScore: 30, assetCriticality: 'low', privilegeLevel: 'low' }),
    demoSignal('key-payments-reporting', { identityKind: 'api-key', trigger: 'atypical-api-pattern', confidence: 0.8, riskScore: 70, source: 'siem/rule-117' }),
  ];
  for (const s of signals) {
    const r = await submitSignal(client, s, { taskQueue: config.taskQueue });
    console.log(`${r.workflowId.padEnd(40)} ${s.trigger.padEnd(22)} plan ${(await planOf(client, r.workflowId))?.rule ?? '?'}`);
  }
  const dry = await submitSignal(client, demoSignal('key-payments-reporting', { identityKind: 'api-key', trigger: 'secret-exposed', confidence: 0.95, riskScore: 90 }), {
    taskQueue: config.taskQueue,
    dryRun: true,
  });
  console.log(`${dry.workflowId}  (dry run of the harsh ladder: no side effects)`);
  console.log('\nWatch them in the Temporal UI (the dry run is left out of these views):');
  for (const line of viewLines(uiBase(), temporalTarget().namespace)) console.log(line);
  console.log('\nor from the shell:');
  console.log('  npm run cordon -- list --open');
  console.log('  npm run cordon -- describe cordon/lab/alice@example.com');
  console.log('  npm run cordon -- login --as you --role lead      # development issuer of the embedded stack');
  console.log('  npm run cordon -- command cordon/lab/alice@example.com advance --reason "confirmed with the user"');
}
