// Builds the providers this worker serves from configuration. Lab is always there; the real
// systems join when their admin connection is configured.
import type { CordonConfig } from '../config';
import { KeycloakProvider } from './keycloak';
import { LabProvider } from './lab';
import { PostgresProvider } from './postgres';
import type { IdentityProvider } from './provider';
import { RedisProvider } from './redis';

export type ProviderRegistry = ReadonlyMap<string, IdentityProvider>;

export function createProviders(config: CordonConfig): ProviderRegistry {
  const providers: IdentityProvider[] = [new LabProvider(config.labFile)];
  if (config.postgresUrl) providers.push(new PostgresProvider(config.postgresUrl));
  if (config.redisUrl) providers.push(new RedisProvider(config.redisUrl));
  if (config.keycloak) providers.push(new KeycloakProvider(config.keycloak));
  return new Map(providers.map((p) => [p.name, p]));
}

/** Opens every provider's admin connection; a provider that is down now is reported, not fatal (its calls retry). */
export async function warmProviders(registry: ProviderRegistry): Promise<Array<{ provider: string; ms: number; error?: string }>> {
  return Promise.all(
    [...registry.values()].map(async (p) => {
      const t = performance.now();
      try {
        await p.warm?.();
        return { provider: p.name, ms: Math.round(performance.now() - t) };
      } catch (err) {
        return { provider: p.name, ms: Math.round(performance.now() - t), error: (err as Error).message };
      }
    }),
  );
}

export async function closeProviders(registry: ProviderRegistry): Promise<void> {
  await Promise.all([...registry.values()].map((p) => p.close()));
}
