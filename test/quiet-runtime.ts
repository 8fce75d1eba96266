// Installed before any connection exists. Tests provoke activity failures and (in the replay
// test) non-determinism on purpose, which the SDK logs as warnings: show errors only.
import { DefaultLogger, makeTelemetryFilterString, Runtime } from '@temporalio/worker';

// CORDON_TEST_LOG=WARN (or INFO) shows more while debugging a test.
const level = (process.env.CORDON_TEST_LOG as 'WARN' | 'INFO' | undefined) ?? 'ERROR';
Runtime.install({
  logger: new DefaultLogger(level),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: level, other: level }), forward: {} } },
});
