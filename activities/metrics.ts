// Cordon's own Prometheus series, recorded through the SDK's metric meter so that they leave by
// the same exporter as the SDK's (the worker's CORDON_METRICS_PORT). Names and buckets live here
// and in workers/main.ts; the workflow records time to suppress and outcomes (workflows/metrics.ts).
import type { Context } from '@temporalio/activity';
import type { MetricHistogram, MetricMeter } from '@temporalio/common';
import { PROVIDER_CALL, TIME_TO_SUPPRESS } from '../workflows/metric-names';

/** Buckets in milliseconds: time to suppress lives between tens of ms and a minute of retries. */
const MS_BUCKETS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000];
export const CORDON_BUCKETS: Record<string, number[]> = { [TIME_TO_SUPPRESS]: MS_BUCKETS, [PROVIDER_CALL]: MS_BUCKETS };

const histograms = new WeakMap<MetricMeter, MetricHistogram>();

/** How long one provider call took, by provider, action (suppress:revoke-sessions, restrictGrants, …) and outcome. */
export function recordProviderCall(ctx: Context, provider: string, action: string, outcome: string, ms: number): void {
  let h = histograms.get(ctx.metricMeter);
  if (!h) {
    h = ctx.metricMeter.createHistogram(PROVIDER_CALL, 'float', 'ms', 'time one call to an identity provider took');
    histograms.set(ctx.metricMeter, h);
  }
  h.record(ms, { provider, action, outcome });
}
