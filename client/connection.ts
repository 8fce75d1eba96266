// One way to reach Temporal: @temporalio/envconfig (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
// TEMPORAL_API_KEY, TLS, TOML profile), defaulting to the local dev server.
import { Client, Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';

export const LOCAL_ADDRESS = '127.0.0.1:7233';

export interface TemporalTarget {
  address: string;
  namespace: string;
  /** True when envconfig points somewhere: then `npm start` runs only the worker. */
  external: boolean;
  connectionOptions: ReturnType<typeof loadClientConnectConfig>['connectionOptions'];
}

export function temporalTarget(): TemporalTarget {
  const config = loadClientConnectConfig();
  const address = config.connectionOptions.address;
  return {
    address: address ?? LOCAL_ADDRESS,
    namespace: config.namespace ?? 'default',
    external: address !== undefined,
    connectionOptions: { ...config.connectionOptions, address: address ?? LOCAL_ADDRESS },
  };
}

export async function connectClient(target: TemporalTarget = temporalTarget()): Promise<Client> {
  const connection = await Connection.connect(target.connectionOptions);
  return new Client({ connection, namespace: target.namespace });
}
