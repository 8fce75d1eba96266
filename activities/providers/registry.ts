// Builds the providers this worker serves from configuration. Lab is always there; the real
// systems join when their admin connection is configured.
import type { CordonConfig } from '../config';
import { LabProvider } from './lab';
import type { IdentityProvider } from './provider';

export type ProviderRegistry = ReadonlyMap<string, IdentityProvider>;

export function createProviders(config: CordonConfig): ProviderRegistry {
  const providers: IdentityProvider[] = [new LabProvider(config.labFile)];
  return new Map(providers.map((p) => [p.name, p]));
}

export async function closeProviders(registry: ProviderRegistry): Promise<void> {
  await Promise.all([...registry.values()].map((p) => p.close()));
}
