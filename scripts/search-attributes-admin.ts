// Registers Cordon's search attributes on a namespace, each with its own indexed type (Keyword,
// Int, Datetime, Bool): one place, used by register-search-attributes and npm run cluster.
import type { Connection } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { ALL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

const T = temporal.api.enums.v1.IndexedValueType;
const INDEXED: Partial<Record<SearchAttributeType, temporal.api.enums.v1.IndexedValueType>> = {
  [SearchAttributeType.KEYWORD]: T.INDEXED_VALUE_TYPE_KEYWORD,
  [SearchAttributeType.INT]: T.INDEXED_VALUE_TYPE_INT,
  [SearchAttributeType.DATETIME]: T.INDEXED_VALUE_TYPE_DATETIME,
  [SearchAttributeType.BOOL]: T.INDEXED_VALUE_TYPE_BOOL,
};

/** Adds the attributes the namespace lacks; returns their names (none: all were there). */
export async function addMissingSearchAttributes(operatorService: Connection['operatorService'], namespace: string): Promise<string[]> {
  const existing = await operatorService.listSearchAttributes({ namespace });
  const missing = ALL_SEARCH_ATTRIBUTES.filter((k) => existing.customAttributes?.[k.name] === undefined);
  if (!missing.length) return [];
  await operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(
      missing.map((k) => {
        const type = INDEXED[k.type];
        if (type === undefined) throw new Error(`search attribute ${k.name}: no indexed type for ${k.type}`);
        return [k.name, type];
      }),
    ),
  });
  return missing.map((k) => k.name);
}
