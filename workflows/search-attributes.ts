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
  // Triage: what the containment waits for (approval, dependencies, timer, hold, attention, none),
  // since when it stands as it is, and when its next deadline falls.
  waitingFor: defineSearchAttributeKey('CordonWaitingFor', SearchAttributeType.KEYWORD),
  stageSince: defineSearchAttributeKey('CordonStageSince', SearchAttributeType.DATETIME),
  nextDeadline: defineSearchAttributeKey('CordonNextDeadline', SearchAttributeType.DATETIME),
  /** Dry runs carry it true, so the ready-made views leave them out. */
  dryRun: defineSearchAttributeKey('CordonDryRun', SearchAttributeType.BOOL),
} as const;

export const ALL_SEARCH_ATTRIBUTES = Object.values(SA);

/** How `temporal server start-dev --search-attribute` names each type Cordon uses. */
export const CLI_TYPE_NAMES: Partial<Record<SearchAttributeType, string>> = {
  [SearchAttributeType.KEYWORD]: 'Keyword',
  [SearchAttributeType.INT]: 'Int',
  [SearchAttributeType.DATETIME]: 'Datetime',
  [SearchAttributeType.BOOL]: 'Bool',
};

/** `temporal server start-dev --search-attribute` arguments for the keys above. */
export function searchAttributeFlags(): string[] {
  return ALL_SEARCH_ATTRIBUTES.flatMap((k) => {
    const type = CLI_TYPE_NAMES[k.type];
    if (!type) throw new Error(`search attribute ${k.name}: no dev-server type name for ${k.type}`);
    return ['--search-attribute', `${k.name}=${type}`];
  });
}
