// Installed before any connection exists. Tests provoke activity failures and (in the replay
// test) non-determinism on purpose, which the SDK logs as warnings: show errors only.
import { DefaultLogger, makeTelemetryFilterString, Runtime } from '@temporalio/worker';

Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR', other: 'ERROR' }), forward: {} } },
});
