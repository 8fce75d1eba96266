// OpenID Shared Signals over real HTTP: SETs from test transmitters (keys this test generates,
// one JWKS served on loopback, one in a file) verified, refused with RFC 8935's codes, deduplicated
// on jti across a server restart and mapped into containments; and Cordon's own SETs, pushed after
// revoke, rotate and disable to a test receiver that verifies each against /.well-known/jwks.json.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../workers/worker';
import Fastify from 'fastify';
import { SignJWT, createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK } from 'jose';
import { LabProvider } from '../activities/providers/lab';
import { containmentWorkflowId } from '../workflows/ids';
import { CAEP, RISC } from '../workflows/ssf-events';
import type { ContainmentState } from '../workflows/schemas';
import { receiptWorkflowId } from '../server/ssf-receiver';
import { SsfConfigError, parseSsfSettings } from '../activities/ssf-config';
import { closeTestEnv, testEnv } from './harness';
import { eventually, labIdentity, policyWith, timedLadder } from './fixtures';
import { mintToken, withApi, type Api } from './http-harness';

after(closeTestEnv);

const IDP = 'https://idp.test/realms/ops';
const SCANNER = 'https://scanner.test';
const AUD = 'https://cordon.test/ssf';
let idpKey: CryptoKey;
let scannerKey: CryptoKey;
let otherKey: CryptoKey;
let ecKey: CryptoKey;
let jwksServer: ReturnType<typeof Fastify>;
let ssf: unknown;

before(async () => {
  ({ privateKey: idpKey } = await generateKeyPair('RS256', { extractable: true }));
  ({ privateKey: scannerKey } = await generateKeyPair('RS256', { extractable: true }));
  ({ privateKey: otherKey } = await generateKeyPair('RS256', { extractable: true }));
  ({ privateKey: ecKey } = await generateKeyPair('ES256'));
  const pub = async (k: CryptoKey, kid: string): Promise<JWK> => {
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...rest } = await exportJWK(k);
    return { ...rest, kid, alg: 'RS256', use: 'sig' };
  };
  // The identity provider publishes its JWKS over HTTP; the scanner's sits in a file.
  const idpJwks = { keys: [await pub(idpKey, 'idp-1')] };
  jwksServer = Fastify();
  jwksServer.get('/jwks', async () => idpJwks);
  const jwksUrl = `${await jwksServer.listen({ host: '127.0.0.1', port: 0 })}/jwks`;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-ssf-'));
  writeFileSync(join(dir, 'scanner.jwks.json'), JSON.stringify({ keys: [await pub(scannerKey, 'scanner-1')] }));
  ssf = {
    transmitters: [
      { name: 'idp', issuer: IDP, jwksUrl, audience: AUD },
      {
        name: 'scanner',
        issuer: SCANNER,
        jwksFile: join(dir, 'scanner.jwks.json'),
        audience: AUD,
        events: [`${RISC}credential-compromise`],
        mapping: {
          version: 'scanner-1',
          subjects: { opaque: { provider: 'lab', identityKind: 'service-account' } },
          events: { [`${RISC}credential-compromise`]: { trigger: 'secret-exposed', confidence: 0.97, riskScore: 95, privilegeLevel: 'high' } },
        },
      },
    ],
  };
});
after(() => jwksServer.close());

let seq = 0;
interface SetOptions {
  key?: CryptoKey;
  kid?: string;
  typ?: string;
  alg?: string;
  iss?: string;
  aud?: string;
  iatOffset?: number;
  extra?: Record<string, unknown>;
  jti?: string;
}
/** A SET as a transmitter signs it. */
async function set(event: string, payload: Record<string, unknown>, subject: Record<string, unknown>, o: SetOptions = {}): Promise<{ jws: string; jti: string; iss: string }> {
  const jti = o.jti ?? `set-${process.pid}-${++seq}-${Math.random().toString(36).slice(2)}`;
  const iss = o.iss ?? IDP;
  const jws = await new SignJWT({ sub_id: subject, events: { [event]: payload }, ...o.extra })
    .setProtectedHeader({ alg: o.alg ?? 'RS256', kid: o.kid ?? 'idp-1', typ: o.typ ?? 'secevent+jwt' })
    .setIssuer(iss)
    .setAudience(o.aud ?? AUD)
    .setIssuedAt(Math.floor(Date.now() / 1000) + (o.iatOffset ?? 0))
    .setJti(jti)
    .sign(o.key ?? idpKey);
  return { jws, jti, iss };
}
const push = (api: Pick<Api, 'call'>, jws: string) => api.call('POST', '/ssf/events', { body: jws, contentType: 'application/secevent+jwt' });
const email = () => `user-${Math.random().toString(36).slice(2, 10)}@example.com`;

async function exists(workflowId: string): Promise<boolean> {
  const { client } = await testEnv();
  try {
    await client.workflow.getHandle(workflowId).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}
const receipt = async (iss: string, jti: string) => (await testEnv()).client.workflow.getHandle(receiptWorkflowId(iss, jti)).result();

describe('the SSF file', () => {
  test('an invalid file is refused with every problem named; the mapping is validated with it', () => {
    assert.throws(
      () =>
        parseSsfSettings(
          {
            transmitters: [
              { name: 'a', issuer: IDP, audience: AUD },
              { name: 'a', issuer: IDP, jwksUrl: 'https://x.test/jwks', audience: AUD, algorithms: ['none'] },
              { name: 'b', issuer: SCANNER, jwksUrl: 'https://x.test/jwks', audience: AUD, mapping: { version: 'm', subjects: { email: { provider: 'Lab!', identityKind: 'robot' } }, events: { 'not a uri': {} } } },
            ],
            receivers: [{ name: 'r', endpoint: 'ftp://x', audience: 'a', authorizationEnv: 'lower-case', events: ['account-enabled'] }],
          },
          tmpdir(),
        ),
      (err: Error) => {
        assert.ok(err instanceof SsfConfigError);
        const named = ['transmitters.0.jwksUrl', 'transmitters.1.name', 'transmitters.1.issuer', 'transmitters.1.algorithms', 'transmitters.2.mapping.subjects.email.provider', 'transmitters.2.mapping.subjects.email.identityKind'];
        for (const want of [...named, 'transmitters.2.mapping.events', 'receivers.0.endpoint', 'receivers.0.authorizationEnv', 'receivers.0.events']) assert.match(err.message, new RegExp(want.replace(/\./g, '\\.')), want);
        return true;
      },
    );
    // A mapping file is read and validated the same way.
    const dir = mkdtempSync(join(tmpdir(), 'cordon-ssf-map-'));
    writeFileSync(join(dir, 'm.json'), JSON.stringify({ version: 'm', subjects: {}, events: { [`${RISC}credential-compromise`]: { trigger: 'secret-exposed', confidence: 2, riskScore: 90 } } }));
    assert.throws(() => parseSsfSettings({ transmitters: [{ name: 'c', issuer: SCANNER, jwksUrl: 'https://x.test/jwks', audience: AUD, mappingFile: 'm.json' }] }, dir), /transmitters\.0\.mapping: invalid SSF mapping: events\..*confidence/);
  });
});

describe('Shared Signals receiver', () => {
  test('a RISC credential-compromise SET starts the mapped containment; a replayed jti is a no-op, also after a restart', async () => {
    await withApi({ ssf }, async (api) => {
      const who = email();
      await new LabProvider(api.config.labFile).dir.seed({ [who]: labIdentity({ kind: 'human' }) });
      const s = await set(`${RISC}credential-compromise`, { credential_type: 'password' }, { format: 'email', email: who });
      const r = await push(api, s.jws);
      assert.equal(r.status, 202, r.text);
      const id = containmentWorkflowId({ provider: 'lab', identityId: who });
      const { client } = await testEnv();
      const state = await eventually(async () => {
        const st = await client.workflow.getHandle(id).query<ContainmentState>('state');
        return st.position === 'suppressed' && st;
      }, 'the mapped containment suppressed');
      assert.equal(state.target.kind, 'human');
      assert.equal(state.signals[0]!.trigger, 'secret-exposed');
      assert.match(state.signals[0]!.signalId, /^ssf-[0-9a-f]{40}$/);
      const rec = await receipt(s.iss, s.jti);
      assert.equal(rec.outcome, 'containment');
      assert.equal(rec.containmentId, id);
      // The same SET again, and again through a restarted server: acknowledged, nothing changes.
      assert.equal((await push(api, s.jws)).status, 202);
      await api.restarted(async (again) => assert.equal((await push(again, s.jws)).status, 202));
      assert.deepEqual(api.log.filter((l) => l.route === '/ssf/events').map((l) => l.outcome), ['containment', 'duplicate', 'duplicate']);
      const after = await client.workflow.getHandle(id).query<ContainmentState>('state');
      assert.equal(after.signalCount, 1);
      assert.equal(after.actions.filter((a) => a.action.startsWith('suppress:')).length, state.actions.filter((a) => a.action.startsWith('suppress:')).length);
    });
  });

  test('CAEP events follow the mapping’s cases; an unknown event type is acknowledged and recorded, never a containment', async () => {
    await withApi({ ssf }, async (api) => {
      const [byPolicy, byUser, unknown, complex] = [email(), email(), email(), email()];
      const policy = await set(`${CAEP}session-revoked`, { initiating_entity: 'policy', event_timestamp: Math.floor(Date.now() / 1000) }, { format: 'email', email: byPolicy });
      const user = await set(`${CAEP}session-revoked`, { initiating_entity: 'user' }, { format: 'email', email: byUser });
      const odd = await set('https://example.com/secevent/made-up', { anything: true }, { format: 'email', email: unknown });
      const risk = await set(`${CAEP}risk-level-change`, { current_level: 'HIGH', principal: 'USER' }, { format: 'complex', user: { format: 'email', email: complex }, session: { format: 'opaque', id: 'sess-42' } });
      for (const s of [policy, user, odd, risk]) assert.equal((await push(api, s.jws)).status, 202);
      assert.equal((await receipt(policy.iss, policy.jti)).outcome, 'containment');
      assert.equal((await receipt(user.iss, user.jti)).outcome, 'recorded');
      const oddReceipt = await receipt(odd.iss, odd.jti);
      assert.equal(oddReceipt.outcome, 'recorded');
      assert.match(oddReceipt.detail, /not mapped/);
      const riskReceipt = await receipt(risk.iss, risk.jti);
      assert.equal(riskReceipt.outcome, 'containment');
      const { client } = await testEnv();
      const st = await client.workflow.getHandle(riskReceipt.containmentId!).query<ContainmentState>('state');
      assert.equal(st.signals[0]!.confidence, 0.9);
      assert.equal(st.target.identityId, complex);
      assert.equal(await exists(containmentWorkflowId({ provider: 'lab', identityId: byUser })), false);
      assert.equal(await exists(containmentWorkflowId({ provider: 'lab', identityId: unknown })), false);
    });
  });

  test('forged, expired, wrong-audience, wrong-issuer SETs and SETs with sub or exp are refused with RFC 8935 codes, changing nothing', async () => {
    await withApi({ ssf, ssfMaxAgeMs: 3_600_000 }, async (api) => {
      const compromise = `${RISC}credential-compromise`;
      const cases: [string, () => Promise<{ jws: string; jti: string; iss: string }>, string][] = [];
      const who: string[] = [];
      const add = (name: string, code: string, o: SetOptions, payload: Record<string, unknown> = { credential_type: 'password' }, event = compromise) => {
        const w = email();
        who.push(w);
        cases.push([name, () => set(event, payload, { format: 'email', email: w }, o), code]);
      };
      add('forged (another key under the idp kid)', 'authentication_failed', { key: otherKey });
      add('signed with a key the idp does not publish', 'invalid_key', { key: otherKey, kid: 'rogue' });
      add('expired (issued two hours ago)', 'invalid_request', { iatOffset: -7200 });
      add('wrong audience', 'invalid_audience', { aud: 'https://someone-else.test' });
      add('unknown issuer', 'invalid_issuer', { iss: 'https://evil.test' });
      add('carries sub', 'invalid_request', { extra: { sub: 'alice' } });
      add('carries exp', 'invalid_request', { extra: { exp: Math.floor(Date.now() / 1000) + 600 } });
      add('typ is not secevent+jwt', 'invalid_request', { typ: 'JWT' });
      add('an algorithm the transmitter may not use', 'invalid_key', { alg: 'ES256', key: ecKey });
      add('a malformed event payload', 'invalid_request', {}, { credential_type: 42 });
      add('scanner may not send this event type', 'access_denied', { iss: SCANNER, key: scannerKey, kid: 'scanner-1' }, { initiating_entity: 'policy' }, `${CAEP}session-revoked`);
      for (const [name, p, code] of cases) {
        const s = await p();
        const r = await push(api, s.jws);
        assert.equal(r.status, 400, `${name}: ${r.text}`);
        assert.equal(r.body.err, code, `${name}: ${r.text}`);
        assert.equal(typeof r.body.description, 'string');
        assert.equal(await exists(receiptWorkflowId(s.iss, s.jti)), false, `${name} left a receipt`);
      }
      const junk = await push(api, 'this is not a jws');
      assert.deepEqual([junk.status, junk.body.err], [400, 'invalid_request']);
      const json = await api.call('POST', '/ssf/events', { json: { events: {} } });
      assert.equal(json.status, 415);
      for (const w of who) assert.equal(await exists(containmentWorkflowId({ provider: 'lab', identityId: w })), false);
      // The scanner's own event, signed with its file-configured key, maps through its own mapping.
      const ok = await set(compromise, { credential_type: 'api-key' }, { format: 'opaque', id: 'svc-leaked' }, { iss: SCANNER, key: scannerKey, kid: 'scanner-1' });
      assert.equal((await push(api, ok.jws)).status, 202);
      assert.equal((await receipt(ok.iss, ok.jti)).containmentId, 'cordon/lab/svc-leaked');
    });
  });
});

/** A free loopback port nobody listens on: a receiver that is down. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('Shared Signals transmitter', () => {
  test('revoke, rotate and disable push SETs that verify against /.well-known/jwks.json; a receiver that is down delays nothing', async () => {
    // The relying party refuses each SET's first delivery (503), so every SET is retried: same jti, same bytes.
    const seen: { jti: string; event: string; raw: string; sub_id: unknown; txn: unknown }[] = [];
    const attempts = new Map<string, string[]>();
    let verify: ((jws: string) => Promise<{ payload: Record<string, unknown> }>) | undefined;
    const rp = Fastify();
    rp.addContentTypeParser('application/secevent+jwt', { parseAs: 'string' }, (_r, body, done) => done(null, body));
    rp.post('/ssf', async (req, reply) => {
      const raw = req.body as string;
      const { payload } = await verify!(raw);
      assert.equal(payload.sub, undefined);
      assert.equal(payload.exp, undefined);
      const jti = String(payload.jti);
      const before = attempts.get(jti) ?? [];
      attempts.set(jti, [...before, raw]);
      if (before.length === 0) return reply.code(503).send({ err: 'try again' });
      seen.push({ jti, event: Object.keys(payload.events as object)[0]!, raw, sub_id: payload.sub_id, txn: payload.txn });
      return reply.code(202).send();
    });
    const rpUrl = `${await rp.listen({ host: '127.0.0.1', port: 0 })}/ssf`;
    const receivers = { receivers: [{ name: 'rp', endpoint: rpUrl, audience: 'https://rp.test' }, { name: 'down', endpoint: `http://127.0.0.1:${await deadPort()}/ssf`, audience: 'https://down.test' }] };
    try {
      await withApi({ policy: policyWith(timedLadder('100ms')), ssf: receivers }, async (api) => {
        const meta = (await api.call('GET', '/.well-known/ssf-configuration')).body;
        assert.equal(meta.issuer, api.base);
        assert.deepEqual(meta.delivery_methods_supported, ['urn:ietf:rfc:8935']);
        const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
        verify = (jws) => jwtVerify(jws, jwks, { issuer: meta.issuer, audience: 'https://rp.test', typ: 'secevent+jwt', algorithms: ['RS256'] });
        const who = email();
        await new LabProvider(api.config.labFile).dir.seed({ [who]: labIdentity({ kind: 'human' }) });
        const signal = { signalId: `sig-${Math.random().toString(36).slice(2)}`, provider: 'lab', identityId: who, identityKind: 'human', trigger: 'impossible-travel', confidence: 0.95, riskScore: 90, assetCriticality: 'high', privilegeLevel: 'high', source: 'test', observedAt: new Date().toISOString() };
        const accepted = await api.call('POST', '/v1/signals', { token: await mintToken('siem', ['cordon-intake']), json: signal });
        assert.equal(accepted.status, 202, accepted.text);
        const id = accepted.body.containmentId as string;
        const { client } = await testEnv();
        const state = () => client.workflow.getHandle(id).query<ContainmentState>('state');
        // The ladder walks to disabled while the down receiver is still being retried.
        const disabled = await eventually(async () => {
          const st = await state();
          return st.position === 'disabled' && st;
        }, 'the ladder at disabled', 30_000);
        assert.ok(!disabled.actions.some((a) => a.action.startsWith('ssf:') && a.detail.includes('down')), 'nothing is recorded for the down receiver while it is retried');
        await eventually(async () => seen.length === 3, 'three SETs at the relying party', 30_000);
        assert.deepEqual(seen.map((s) => s.event).sort(), [`${CAEP}credential-change`, `${CAEP}session-revoked`, `${RISC}account-disabled`].sort());
        for (const s of seen) {
          assert.deepEqual(s.sub_id, { format: 'email', email: who });
          assert.equal(s.txn, id);
          const tries = attempts.get(s.jti)!;
          assert.equal(tries.length, 2, 'refused once, then retried');
          assert.equal(tries[0], tries[1], 'the retry is the same SET, jti included');
        }
        const recorded = await eventually(async () => {
          const st = await state();
          const done = st.actions.filter((a) => a.action.startsWith('ssf:') && a.outcome === 'done');
          return done.length === 3 && done;
        }, 'three deliveries on the record');
        for (const s of seen) assert.ok(recorded.some((a) => a.detail.includes(`pushed to rp`) && a.detail.includes(s.jti)), `jti ${s.jti} on the record`);
        assert.ok(Date.parse(disabled.suppressedAt!) - Date.parse(disabled.startedAt) < 5000, 'suppression was not held up by the receivers');
        // Pushes are scheduled as receivers are looked up, between local activities' results: the
        // history must still replay, where those results may arrive in fewer activations.
        const history = await client.workflow.getHandle(id).fetchHistory();
        await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), replayName: 'ssf-pushes' }, history, id);
      });
    } finally {
      await rp.close();
    }
  });
});
