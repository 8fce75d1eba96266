// `npm run api` (and `npm start`, beside the worker): the HTTP API and Shared Signals endpoints on
// CORDON_HTTP_HOST:CORDON_HTTP_PORT (loopback by default). Access logs are JSON lines on stdout;
// everything else goes to stderr. SIGINT/SIGTERM close it gracefully.
import { loadConfig } from '../activities/config';
import { OperatorVerifier } from '../activities/operator-auth';
import { loadSsfSettings } from '../activities/ssf-config';
import { loadOrCreateSigningKey } from '../activities/ssf-keys';
import { connectClient } from '../client/connection';
import { stopWithStack } from '../scripts/stack-child';
import { buildServer } from './app';
import { replayWindowMs } from './ssf-receiver';

async function main(): Promise<void> {
  stopWithStack('cordon http');
  const config = loadConfig();
  if (!config.http.port) return console.error('cordon http: CORDON_HTTP_PORT=0: the HTTP API is off');
  const ssf = loadSsfSettings(config.ssf.file); // refuses to start on an invalid file, naming every problem
  const signing = await loadOrCreateSigningKey(config.dataDir, config.ssf.signingKeyFile);
  const client = await connectClient();
  const window = await replayWindowMs(client, config.ssf.maxAgeMs);
  const server = await buildServer({ client, config, verifier: new OperatorVerifier(config.oidc), ssf, signingKey: signing.publicJwk, ssfMaxAgeMs: window.ms });
  const address = await server.app.listen({ host: config.http.host, port: config.http.port });
  console.error(`cordon http: listening on ${address} (OpenAPI at ${address}/openapi.json); SET issuer ${config.ssf.issuer}`);
  console.error(
    `cordon http: ${ssf.transmitters.length} SSF transmitter(s) trusted${ssf.transmitters.length ? ` (${ssf.transmitters.map((t) => t.name).join(', ')})` : ''}, SETs accepted up to ${Math.round(window.ms / 60_000)} min old` +
      (window.retentionMs ? ` (namespace retention ${Math.round(window.retentionMs / 3_600_000)} h)` : ''),
  );
  if (!config.oidc.issuer) console.error('cordon http: WARNING no CORDON_OIDC_ISSUER: every bearer token is refused');
  const stop = async () => {
    await server.app.close();
    await client.connection.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err) => {
  console.error(`cordon http: ${(err as Error).message}`);
  process.exit(1);
});
