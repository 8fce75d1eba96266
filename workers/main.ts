// The worker process: logger and Prometheus metrics through the SDK runtime, connection from
// envconfig, graceful shutdown on SIGINT/SIGTERM (the SDK drains within the grace time).
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { describeProviders, loadConfig } from '../activities/config';
import { temporalTarget } from '../client/connection';
import { CORDON_BUCKETS } from '../activities/metrics';
import { stopWithStack } from '../scripts/stack-child';
import { warmUp } from './warm-up';
import { createCordonWorker } from './worker';

async function main(): Promise<void> {
  stopWithStack('cordon worker');
  const config = loadConfig();
  Runtime.install({
    logger: new DefaultLogger((process.env.CORDON_LOG_LEVEL as 'INFO' | undefined) ?? 'INFO'),
    telemetryOptions: config.metricsPort ? { metrics: { prometheus: { bindAddress: `127.0.0.1:${config.metricsPort}`, histogramBucketOverrides: CORDON_BUCKETS } } } : undefined,
  });
  const target = temporalTarget();
  const connection = await NativeConnection.connect(target.connectionOptions);
  const { worker, policy, close, state, warmed } = await createCordonWorker({ connection, namespace: target.namespace, config });
  const providers = describeProviders(config);
  console.log(
    `cordon worker: ${target.address} namespace=${target.namespace} taskQueue=${config.taskQueue} providers=${providers.join(', ')} state=${state}` +
      (config.metricsPort ? ` metrics=http://127.0.0.1:${config.metricsPort}/metrics` : ''),
  );
  console.log(`cordon worker: policy ${policy.version} sha256 ${policy.sha256} (${config.policyFile ?? 'shipped default'})`);
  console.log(
    config.oidc.issuer
      ? `cordon worker: operators verified against ${config.oidc.issuer} (audience ${config.oidc.audience}, roles from ${config.oidc.rolesClaim})`
      : 'cordon worker: WARNING no OIDC issuer configured (CORDON_OIDC_ISSUER): every operator command will be refused',
  );
  void warmed.then((all) => {
    for (const w of all) console.log(`cordon worker: ${w.provider} ${w.error ? `not reachable yet (${w.error}): its calls will retry` : `connected in ${w.ms} ms`}`);
  });
  // Worker.run() installs SIGINT/SIGTERM handlers that begin a graceful shutdown.
  const running = worker.run();
  if (config.warmUp) {
    void warmUp(connection, target.namespace, config.taskQueue).then((w) =>
      console.log('error' in w ? `cordon worker: warm-up failed (${w.error}): the first containment runs cold` : `cordon worker: warmed up in ${w.ms} ms (${w.workflowId})`),
    );
  }
  try {
    await running;
  } finally {
    await close();
    await connection.close();
  }
}

main().catch((err) => {
  console.error(`cordon worker: ${(err as Error).message}`);
  process.exit(1);
});
