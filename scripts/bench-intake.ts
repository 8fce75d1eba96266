// The intake phase of `npm run bench`: the HTTP API on loopback under autocannon, posting signals
// for many identities with repeats (joins) and exact duplicates (the same signalId again). It
// measures accepted signals per second, HTTP accept → suppression acknowledged by the provider,
// and counts what was folded, started and lost. Bounded in requests and in time.
import { join } from 'node:path';
import autocannon from 'autocannon';
import { OperatorVerifier } from '../activities/operator-auth';
import { loadOrCreateSigningKey } from '../activities/ssf-keys';
import { describeContainment } from '../client/containments';
import { buildServer } from '../server/app';
import { containmentWorkflowId } from '../workflows/ids';
import type { IdentitySignal } from '../workflows/schemas';
import { labIdentity, policyWith, signal } from '../test/fixtures';
import { ShardedLab } from './bench-providers';
import { percentiles, sleep, type Percentiles } from './measure';
import { withBenchWorker, type Bench } from './bench-phases';

export interface IntakeResult {
  requests: number;
  connections: number;
  identities: number;
  seconds: number;
  /** 202 answers per second over the run. */
  acceptedPerSecond: number;
  accepted: number;
  /** Answers other than 202 (should be none). */
  errors: number;
  /** Request → 202 as the load generator saw it (includes reading the plan back), ms. */
  http: { p50: number; p99: number; max: number };
  /** The server's accept → the provider's acknowledgement of the last suppression action, ms. */
  acceptToSuppressed: Percentiles;
  /** Signals sent again with a signalId already sent: folded into nothing. */
  duplicatesSent: number;
  /** Further signals for an identity already being contained: joined its containment. */
  joinsSent: number;
  containmentsStarted: number;
  /** Signals answered 202 that no containment shows (must be 0). */
  lost: number;
}

// Open containments stay open (no retention timer firing mid-measurement); suppression only.
const POLICY = policyWith([], { retainFor: '1h' });

export async function intake(b: Bench, o: { requests: number; connections: number; maxSeconds?: number }): Promise<IntakeResult> {
  const identities = Math.max(1, Math.round(o.requests * 0.6));
  const lab = new ShardedLab(join(b.root, 'intake-lab'), 16);
  return withBenchWorker(
    b,
    'intake',
    async (config) => {
      const ids = Array.from({ length: identities }, (_, i) => `bench-intake-${i}`);
      await lab.seed(Object.fromEntries(ids.map((id) => [id, labIdentity()])));
      // The plan: every identity once, then exact duplicates and joins of earlier ones, interleaved.
      const firsts = ids.map((identityId) => signal({ identityId, source: 'bench/intake' }));
      const extra = o.requests - firsts.length;
      const plan: IdentitySignal[] = [...firsts];
      let duplicatesSent = 0;
      let joinsSent = 0;
      for (let i = 0; i < extra; i++) {
        const base = firsts[(i * 7) % firsts.length]!;
        if (i % 2 === 0) {
          plan.push(base);
          duplicatesSent++;
        } else {
          plan.push(signal({ identityId: base.identityId, trigger: 'atypical-api-pattern', source: 'bench/intake' }));
          joinsSent++;
        }
      }
      const server = await buildServer({
        client: b.client,
        config: { ...config, http: { ...config.http, ratePerMinute: 1_000_000, port: 0 } },
        verifier: new OperatorVerifier(config.oidc),
        ssf: { transmitters: [], receivers: [] },
        signingKey: (await loadOrCreateSigningKey(config.dataDir)).publicJwk,
        accessLog: () => undefined,
      });
      const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
      try {
        const token = await b.issuer.machineToken('bench-siem', [config.intakeRole], { ttlSeconds: 3600 });
        const acceptedAt = new Map<string, number>();
        let next = 0;
        let accepted = 0;
        let errors = 0;
        b.progress.update('intake (HTTP)', 0, plan.length);
        const result = await autocannon({
          url: base,
          connections: o.connections,
          amount: plan.length,
          timeout: 30,
          duration: o.maxSeconds ?? 300,
          requests: [
            {
              method: 'POST',
              path: '/v1/signals',
              headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
              setupRequest: (req) => ({ ...req, body: JSON.stringify(plan[next++ % plan.length]) }),
              onResponse: (status: number, body: string) => {
                if (status !== 202) return void errors++;
                accepted++;
                const r = JSON.parse(body) as { signalId: string; acceptedAt: string };
                if (!acceptedAt.has(r.signalId)) acceptedAt.set(r.signalId, Date.parse(r.acceptedAt));
                b.progress.update('intake (HTTP)', accepted + errors, plan.length);
              },
            },
          ],
        });
        // Every identity's containment, once it has suppressed (bounded wait).
        const deadline = Date.now() + 120_000;
        const tts: number[] = [];
        let lost = 0;
        let started = 0;
        const sentIds = new Map<string, Set<string>>();
        for (const s of plan) if (acceptedAt.has(s.signalId)) (sentIds.get(s.identityId) ?? sentIds.set(s.identityId, new Set()).get(s.identityId)!).add(s.signalId);
        let checked = 0;
        for (const [identityId, signalIds] of sentIds) {
          let state;
          for (;;) {
            try {
              state = await describeContainment(b.client, containmentWorkflowId({ provider: 'lab', identityId }));
              if (state.suppressedAt && (state.signalCount ?? 0) >= signalIds.size) break;
            } catch {
              // not visible yet
            }
            if (Date.now() > deadline) break;
            await sleep(100);
          }
          b.progress.update('intake (suppression)', ++checked, sentIds.size);
          if (!state?.suppressedAt) {
            lost += signalIds.size;
            continue;
          }
          started++;
          lost += Math.max(0, signalIds.size - (state.signalCount ?? 0));
          const firstAccepted = acceptedAt.get(state.signals[0]!.signalId);
          if (firstAccepted !== undefined) tts.push(Date.parse(state.suppressedAt) - firstAccepted);
        }
        const seconds = result.duration;
        return {
          requests: plan.length,
          connections: o.connections,
          identities,
          seconds,
          acceptedPerSecond: accepted / seconds,
          accepted,
          errors: errors + result.errors + result.timeouts,
          http: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
          acceptToSuppressed: percentiles(tts),
          duplicatesSent,
          joinsSent,
          containmentsStarted: started,
          lost,
        };
      } finally {
        await server.app.close();
      }
    },
    { providers: new Map([['lab', lab]]), policy: POLICY },
  );
}
