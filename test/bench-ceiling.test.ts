// The bench's ceiling: how far a row's throughput could go on the cores its provider's servers
// share, if Cordon cost nothing beyond the floor's own processes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ceiling, type Rate } from '../scripts/bench-phases';

const near = (a: number | undefined, b: number | undefined) => assert.equal(a?.toFixed(6), b?.toFixed(6));
const rate = (perSecond: number, cpuMs?: Record<string, number>): Rate => ({ concurrency: 8, perSecond, cpuMs, n: 300, p50: 0, p95: 0, p99: 0, min: 0, max: 0, mean: 0 });

test("a provider's server on the same cores lowers the ceiling by what it costs beyond the floor's run", () => {
  // Keycloak clients at 8 in flight, 2026-12-07: the floor 51.7 ms per run at 31.8/s (1.64 cores busy).
  const floor = rate(31.8, { engine: 33.3, bench: 18.1, keycloak: 0.3 });
  const row = rate(15.2, { engine: 27.0, bench: 35.7, keycloak: 64.8 });
  // 2 cores over 51.7 + 64.5 ms per run: 17.2/s, 54% of the floor's 31.8/s, whatever Cordon's own cost.
  near(ceiling(2, row, floor), 2000 / (51.7 + 64.5) / 31.8);
  assert.ok(ceiling(2, row, floor)! < 0.55);
  // The worker's own cost (engine and bench) does not enter: it is what the ratio measures.
  near(ceiling(2, rate(15.2, { engine: 90, bench: 90, keycloak: 64.8 }), floor), ceiling(2, row, floor));
});

test('without a server of its own a row may reach what the floor left idle, and never loses from a server that got quieter', () => {
  const floor = rate(31.8, { engine: 33.3, bench: 18.1, keycloak: 0.3 });
  near(ceiling(2, rate(30, { engine: 30, bench: 25 }), floor), 2000 / 51.7 / 31.8);
  assert.ok(ceiling(2, rate(30, { engine: 30, bench: 25 }), floor)! > 1.2);
  near(ceiling(2, rate(30, { engine: 30, bench: 25, keycloak: 0.1 }), floor), ceiling(2, rate(30, { engine: 30, bench: 25 }), floor));
  // Nothing measured, nothing said.
  assert.equal(ceiling(2, rate(30), floor), undefined);
  assert.equal(ceiling(2, rate(30, { engine: 1 }), rate(0, { engine: 1 })), undefined);
});
