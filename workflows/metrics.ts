// The workflow's Prometheus series, through the SDK's workflow metric meter: nothing is recorded
// while a history replays, so a containment woken from the cache or another worker counts once.
import { metricMeter } from '@temporalio/workflow';
import { ACTIONS, TIME_TO_SUPPRESS } from './metric-names';

/** Workflow start (or a joining signal's arrival) → the provider acknowledged one suppression action. */
export function recordTimeToSuppress(provider: string, action: string, ms: number): void {
  metricMeter.createHistogram(TIME_TO_SUPPRESS, 'int', 'ms', 'time from the containment starting to the provider acknowledging a suppression').record(Math.max(0, Math.round(ms)), { provider, action });
}

/** Every action record the ladder writes, by provider, action and outcome (done, failed, rejected, …). */
export function countAction(provider: string, action: string, outcome: string): void {
  // One series per command type or step, never per identity or gate (bounded cardinality).
  metricMeter.createCounter(ACTIONS, '1', 'action records by outcome').add(1, { provider, action: action.replace(/#\d+$/, ''), outcome });
}
