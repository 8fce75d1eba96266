// The HTTP API over real HTTP, on the run's dev server with a real worker: every route, its
// OpenAPI document, and refusals (unauthenticated, wrong role, oversize, malformed) that answer
// with the right code and change nothing.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import { SignJWT, generateKeyPair } from 'jose';
import { LabProvider } from '../activities/providers/lab';
import { containmentWorkflowId } from '../workflows/ids';
import type { ContainmentState } from '../workflows/schemas';
import { closeTestEnv, testEnv, testToken } from './harness';
import { approvalLadder, eventually, labIdentity, policyWith, signal } from './fixtures';
import { mintToken, withApi, type Api } from './http-harness';

after(closeTestEnv);

const minted: string[] = [];
const intake = async (name = 'siem') => {
  const t = await mintToken(name, ['cordon-intake']);
  minted.push(t);
  return t;
};
const operator = async (name: string, roles: ('responder' | 'lead')[]) => {
  const t = await testToken(name, roles);
  minted.push(t);
  return t;
};
const enc = encodeURIComponent;

async function assertNoContainment(identityId: string): Promise<void> {
  const { client } = await testEnv();
  await assert.rejects(client.workflow.getHandle(containmentWorkflowId({ provider: 'lab', identityId })).describe(), (e: Error) => e instanceof WorkflowNotFoundError);
}

async function seed(api: Api, identityId: string, kind: 'service-account' | 'human' = 'service-account') {
  await new LabProvider(api.config.labFile).dir.seed({ [identityId]: labIdentity({ kind }) });
}

describe('HTTP API', () => {
  test('the OpenAPI document validates and names exactly the registered routes', async () => {
    await withApi({}, async (api) => {
      const r = await api.call('GET', '/openapi.json');
      assert.equal(r.status, 200);
      const { Validator } = await import('@seriousme/openapi-schema-validator');
      const v = await new Validator().validate(r.body);
      assert.deepEqual(v.errors ?? [], []);
      assert.equal(v.valid, true);
      const documented = Object.entries(r.body.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
      const registered = api.server.registered.map((x) => `${x.method} ${x.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`).sort();
      assert.deepEqual(documented, registered);
      for (const want of ['POST /v1/signals', 'GET /v1/containments', 'GET /v1/containments/{id}', 'POST /v1/containments/{id}/commands', 'POST /ssf/events', 'GET /healthz', 'GET /readyz']) assert.ok(documented.includes(want), want);
      // Every write is authenticated: a bearer token, or (for SETs) the transmitter's signature.
      for (const [p, ops] of Object.entries(r.body.paths as Record<string, Record<string, { security: unknown[] }>>)) {
        if (ops.post && p !== '/ssf/events') assert.deepEqual(ops.post.security, [{ bearer: [] }], p);
      }
      // The body schema is the zod signal schema: required fields as the library requires them.
      const signalSchema = r.body.paths['/v1/signals'].post.requestBody.content['application/json'].schema;
      assert.ok(signalSchema.required.includes('signalId') && signalSchema.additionalProperties === false);
    });
  });

  test('POST /v1/signals answers 202 with the containment and its plan, and is idempotent on signalId', async () => {
    await withApi({ policy: policyWith(approvalLadder()) }, async (api) => {
      const s = signal();
      await seed(api, s.identityId);
      const token = await intake();
      const first = await api.call('POST', '/v1/signals', { token, json: s });
      assert.equal(first.status, 202, first.text);
      assert.equal(first.body.containmentId, containmentWorkflowId(s));
      assert.equal(first.body.signalId, s.signalId);
      assert.equal(first.body.plan.rule, 'test-ladder');
      const again = await api.call('POST', '/v1/signals', { token, json: s });
      assert.equal(again.status, 202);
      assert.equal(again.body.containmentId, first.body.containmentId);
      const state = (await api.call('GET', `/v1/containments/${enc(first.body.containmentId)}`, { token: await operator('reader', ['responder']) })).body as ContainmentState;
      assert.equal(state.signals.length, 1);
      assert.equal(state.signalCount, 1);
      // The plan in the answer is the one the worker chose, from the same approved policy.
      assert.equal(first.body.policy.sha256, state.policy?.sha256);
      assert.deepEqual(first.body.plan, state.plan);
    });
  });

  test('refused signals change nothing: no token, a bad token, the wrong role, oversize, malformed, not JSON', async () => {
    await withApi({ http: { bodyLimit: 2048 } }, async (api) => {
      const s = signal();
      await seed(api, s.identityId);
      const { privateKey } = await generateKeyPair('RS256');
      const forged = await new SignJWT({ preferred_username: 'mallory', realm_access: { roles: ['cordon-intake'] } })
        .setProtectedHeader({ alg: 'RS256', kid: 'not-the-issuers' })
        .setIssuer(process.env.CORDON_OIDC_ISSUER!)
        .setAudience('cordon')
        .setSubject('mallory')
        .setJti('j-forged')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
      const expired = await mintToken('siem', ['cordon-intake'], { now: Date.now() - 3_600_000, ttlSeconds: 60 });
      const none = await api.call('POST', '/v1/signals', { json: s });
      assert.equal(none.status, 401);
      assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer realm="cordon"/);
      assert.equal((await api.call('POST', '/v1/signals', { json: s, token: 'not a token' })).status, 401);
      const f = await api.call('POST', '/v1/signals', { json: s, token: forged });
      assert.equal(f.status, 401);
      assert.match(f.body.message, /key the issuer does not publish|signature/);
      const e = await api.call('POST', '/v1/signals', { json: s, token: expired });
      assert.equal(e.status, 401);
      assert.match(e.body.message, /expired/);
      const lead = await api.call('POST', '/v1/signals', { json: s, token: await operator('lead-not-intake', ['lead']) });
      assert.equal(lead.status, 403);
      assert.match(lead.body.message, /cordon-intake/);
      const token = await intake();
      const big = await api.call('POST', '/v1/signals', { token, json: { ...s, source: 'x'.repeat(4096) } });
      assert.equal(big.status, 413);
      // An anonymous oversize request is refused for its missing token before its body is read.
      assert.equal((await api.call('POST', '/v1/signals', { json: { ...s, source: 'x'.repeat(4096) } })).status, 401);
      const bad = await api.call('POST', '/v1/signals', { token, json: { ...s, confidence: 7, riskScore: 'high', observedAt: 'yesterday', extra: 1 } });
      assert.equal(bad.status, 400);
      const paths = (bad.body.issues as { path: string }[]).map((i) => i.path);
      for (const field of ['body.confidence', 'body.riskScore', 'body.observedAt']) assert.ok(paths.includes(field), `${field} in ${paths.join(', ')}`);
      assert.match(bad.body.message, /extra/);
      assert.equal((await api.call('POST', '/v1/signals', { token, body: '{"signalId": ', contentType: 'application/json' })).status, 400);
      assert.equal((await api.call('POST', '/v1/signals', { token, body: 'signalId=1', contentType: 'application/x-www-form-urlencoded' })).status, 415);
      await assertNoContainment(s.identityId);
      assert.deepEqual((await new LabProvider(api.config.labFile).dir.read()).mutations, []);
    });
  });

  test('reads: list with cordon list’s filters, describe, 404, and only for responders and leads', async () => {
    await withApi({ policy: policyWith(approvalLadder()) }, async (api) => {
      const s = signal();
      await seed(api, s.identityId);
      const id = (await api.call('POST', '/v1/signals', { token: await intake(), json: s })).body.containmentId as string;
      const reader = await operator('watcher', ['responder']);
      const listed = await eventually(async () => {
        const r = await api.call('GET', `/v1/containments?provider=lab&identity=${enc(s.identityId)}&open=true&limit=5`, { token: reader });
        return r.status === 200 && r.body.containments.length === 1 && r.body.containments[0];
      }, 'the containment in the list');
      assert.equal(listed.workflowId, id);
      const d = await api.call('GET', `/v1/containments/${enc(id)}`, { token: reader });
      assert.equal(d.status, 200);
      assert.equal(d.body.containmentId, id);
      assert.equal((await api.call('GET', `/v1/containments/${enc('cordon/lab/nobody-here')}`, { token: reader })).status, 404);
      const badQuery = await api.call('GET', '/v1/containments?open=maybe&limit=0&stage=sideways', { token: reader });
      assert.equal(badQuery.status, 400);
      assert.deepEqual((badQuery.body.issues as { path: string }[]).map((i) => i.path).sort(), ['query.limit', 'query.open', 'query.stage']);
      assert.equal((await api.call('GET', `/v1/containments/${enc('cordon-ssf/abc')}`, { token: reader })).status, 400);
      assert.equal((await api.call('GET', '/v1/containments', {})).status, 401);
      assert.equal((await api.call('GET', '/v1/containments', { token: await intake() })).status, 403);
      assert.equal((await api.call('GET', `/v1/containments/${enc(id)}`, { token: await mintToken('nobody', []) })).status, 403);
    });
  });

  test('commands: the bearer token is verified, sealed into the command and verified again by the worker', async () => {
    await withApi({ policy: policyWith(approvalLadder()) }, async (api) => {
      const s = signal();
      await seed(api, s.identityId);
      const id = (await api.call('POST', '/v1/signals', { token: await intake(), json: s })).body.containmentId as string;
      const responder = await operator('rita', ['responder']);
      const path = `/v1/containments/${enc(id)}/commands`;
      const describe = async () => (await api.call('GET', `/v1/containments/${enc(id)}`, { token: responder })).body as ContainmentState;
      // The gate opens in the task that ran suppression; evidence lands a task later.
      await eventually(async () => {
        const st = await describe();
        return st.waiting?.for === 'approval' && st.actions.filter((a) => a.action.startsWith('evidence:')).length === st.plan.evidence.length;
      }, 'the restrict approval, evidence in');
      const before = (await describe()).actions.length;
      // Refused at the edge: nothing reaches the containment.
      assert.equal((await api.call('POST', path, { json: { type: 'advance', reason: 'x' } })).status, 401);
      const expired = await testToken('rita', ['responder'], { now: Date.now() - 3_600_000, ttlSeconds: 60 });
      assert.equal((await api.call('POST', path, { token: expired, json: { type: 'advance', reason: 'x' } })).status, 401);
      const rb = await api.call('POST', path, { token: responder, json: { type: 'rollback', reason: 'not my call' } });
      assert.equal(rb.status, 403);
      assert.match(rb.body.message, /needs the role lead/);
      assert.equal((await api.call('POST', path, { token: await intake(), json: { type: 'hold', reason: 'x' } })).status, 403);
      const malformed = await api.call('POST', path, { token: responder, json: { type: 'explode', reason: '', token: 'smuggled' } });
      assert.equal(malformed.status, 400);
      assert.deepEqual((malformed.body.issues as { path: string }[]).map((i) => i.path).sort(), ['body', 'body.reason', 'body.type']);
      assert.equal((await describe()).actions.length, before, 'refusals at the edge change nothing');
      // Accepted: the worker verified the sealed token and records the verified principal.
      const ok = await api.call('POST', path, { token: responder, json: { type: 'advance', reason: 'confirmed with the owner' } });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.body.by, 'rita');
      const after = await describe();
      const advance = after.actions.find((a) => a.action === 'command:advance');
      assert.equal(advance?.principal?.username, 'rita');
      assert.equal(advance?.principal?.sub, 'dev:rita');
      // Refused by the containment (a rule, not a role): 409, and on its record.
      await eventually(async () => (await describe()).waiting?.stage === 'rotate', 'the rotate approval');
      const resume = await api.call('POST', path, { token: responder, json: { type: 'resume', reason: 'nothing held' } });
      assert.equal(resume.status, 409);
      assert.ok((await describe()).actions.some((a) => a.action === 'command:resume' && a.outcome === 'rejected'));
      assert.equal((await api.call('POST', `/v1/containments/${enc('cordon/lab/no-such-identity')}/commands`, { token: responder, json: { type: 'hold', reason: 'x' } })).status, 404);
    });
  });

  test('each caller has a rate limit that answers 429; health and readiness need no token', async () => {
    await withApi({ http: { ratePerMinute: 3 } }, async (api) => {
      const a = await operator('alpha', ['responder']);
      const b = await operator('bravo', ['responder']);
      const codes = [];
      for (let i = 0; i < 4; i++) codes.push((await api.call('GET', '/v1/containments?limit=1', { token: a })).status);
      assert.deepEqual(codes, [200, 200, 200, 429]);
      assert.equal((await api.call('GET', '/v1/containments?limit=1', { token: b })).status, 200, 'another caller is not limited by the first');
      for (let i = 0; i < 5; i++) assert.equal((await api.call('GET', '/healthz')).status, 200);
      const ready = await api.call('GET', '/readyz');
      assert.equal(ready.status, 200, ready.text);
      assert.deepEqual(ready.body.checks, { temporal: 'ok', oidc: 'ok', sealKey: 'ok' });
    });
  });

  test('access logs are structured and carry no token', async () => {
    await withApi({}, async (api) => {
      const token = await operator('logger', ['responder']);
      await api.call('GET', '/v1/containments?limit=1', { token });
      await api.call('GET', '/v1/containments?limit=1', { token: 'garbage.token.here' });
      const lines = api.log.map((l) => JSON.stringify(l));
      const mine = api.log.find((l) => l.caller === 'logger');
      assert.ok(mine && mine.status === 200 && mine.route === '/v1/containments' && typeof mine.ms === 'number');
      assert.ok(api.log.some((l) => l.status === 401 && l.caller === undefined));
      for (const t of minted) assert.ok(!lines.some((l) => l.includes(t) || l.includes(t.split('.')[2]!)), 'a token in the access log');
      assert.ok(!lines.some((l) => l.includes('garbage.token.here')));
    });
  });
});
