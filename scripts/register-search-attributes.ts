// Registers Cordon's search attributes on the cluster envconfig points at (the local dev server
// registers them at start). Needed once per namespace on a self-hosted cluster.
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { SearchAttributeType } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { connectClient, temporalTarget } from '../client/connection';

async function main(): Promise<void> {
  const target = temporalTarget();
  const client = await connectClient(target);
  const existing = await client.connection.operatorService.listSearchAttributes({ namespace: target.namespace });
  const missing = ALL_SEARCH_ATTRIBUTES.filter((k) => existing.customAttributes?.[k.name] === undefined);
  if (!missing.length) return console.log(`all ${ALL_SEARCH_ATTRIBUTES.length} Cordon search attributes exist on ${target.address}/${target.namespace}`);
  const T = temporal.api.enums.v1.IndexedValueType;
  const INDEXED: Partial<Record<SearchAttributeType, temporal.api.enums.v1.IndexedValueType>> = {
    [SearchAttributeType.KEYWORD]: T.INDEXED_VALUE_TYPE_KEYWORD,
    [SearchAttributeType.INT]: T.INDEXED_VALUE_TYPE_INT,
    [SearchAttributeType.DATETIME]: T.INDEXED_VALUE_TYPE_DATETIME,
    [SearchAttributeType.BOOL]: T.INDEXED_VALUE_TYPE_BOOL,
  };
  await client.connection.operatorService.addSearchAttributes({
    namespace: target.namespace,
    searchAttributes: Object.fromEntries(
      missing.map((k) => {
        const type = INDEXED[k.type];
        if (type === undefined) throw new Error(`search attribute ${k.name}: no indexed type for ${k.type}`);
        return [k.name, type];
      }),
    ),
  });
  console.log(`registered ${missing.map((k) => k.name).join(', ')} on ${target.address}/${target.namespace}`);
}

main().catch((err) => {
  console.error(`cordon: ${(err as Error).message} (Temporal Cloud namespaces: add them with tcld or the Cloud UI)`);
  process.exit(1);
});
