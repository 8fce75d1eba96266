// Installed before any connection exists. Tests provoke activity failures and (in the replay
// test) non-determinism on purpose, which the SDK logs as warnings: show errors only. Everything
// the worker logs (warnings and info too) is kept in memory so a test can scan it for secrets.
import { DefaultLogger, makeTelemetryFilterString, Runtime, type LogEntry } from '@temporalio/worker';

let kept = '';
const KEEP_BYTES = 8 * 2 ** 20;

/** What the worker has logged in this process so far (the last 8 MiB), meta included. */
export const capturedLogs = () => kept;

Runtime.install({
  logger: new DefaultLogger('INFO', (entry: LogEntry) => {
    kept = `${kept}${entry.level} ${entry.message} ${JSON.stringify(entry.meta ?? {})}\n`.slice(-KEEP_BYTES);
    if (entry.level === 'ERROR') console.error(`[${entry.level}] ${entry.message}`, entry.meta ?? '');
  }),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR', other: 'ERROR' }), forward: {} } },
});
