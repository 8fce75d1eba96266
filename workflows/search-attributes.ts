// Search attributes every containment carries, so operators can filter in the Temporal UI
// (e.g. CordonStage = "restricted"). They must be registered when the server starts.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SA = {
  identity: defineSearchAttributeKey('CordonIdentity', SearchAttributeType.KEYWORD),
  provider: defineSearchAttributeKey('CordonProvider', SearchAttributeType.KEYWORD),
  kind: defineSearchAttributeKey('CordonIdentityKind', SearchAttributeType.KEYWORD),
  stage: defineSearchAttributeKey('CordonStage', SearchAttributeType.KEYWORD),
  status: defineSearchAttributeKey('CordonStatus', SearchAttributeType.KEYWORD),
  trigger: defineSearchAttributeKey('CordonTrigger', SearchAttributeType.KEYWORD),
  risk: defineSearchAttributeKey('CordonRisk', SearchAttributeType.INT),
} as const;

export const ALL_SEARCH_ATTRIBUTES = Object.values(SA);

/** `temporal server start-dev --search-attribute` arguments for the keys above. */
export function searchAttributeFlags(): string[] {
  return ALL_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=${k.type === SearchAttributeType.INT ? 'Int' : 'Keyword'}`]);
}
