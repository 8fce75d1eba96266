// Registers Cordon's search attributes on the cluster envconfig points at (the local dev server
// registers them at start). Needed once per namespace on a self-hosted cluster.
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { connectClient, temporalTarget } from '../client/connection';
import { addMissingSearchAttributes } from './search-attributes-admin';

async function main(): Promise<void> {
  const target = temporalTarget();
  const client = await connectClient(target);
  const added = await addMissingSearchAttributes(client.connection.operatorService, target.namespace);
  if (!added.length) return console.log(`all ${ALL_SEARCH_ATTRIBUTES.length} Cordon search attributes exist on ${target.address}/${target.namespace}`);
  console.log(`registered ${added.join(', ')} on ${target.address}/${target.namespace}`);
}

main().catch((err) => {
  console.error(`cordon: ${(err as Error).message} (Temporal Cloud namespaces: add them with tcld or the Cloud UI)`);
  process.exit(1);
});
