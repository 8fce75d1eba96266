// Who may give which operator command: the worker enforces it, and the HTTP API refuses a caller
// without the role before anything reaches Temporal. Tokens' roles are mapped to these names.
import type { CommandType, CordonRole } from './schemas';

export const COMMAND_ROLES: Record<CommandType, CordonRole[]> = {
  advance: ['responder', 'lead'],
  hold: ['responder', 'lead'],
  resume: ['responder', 'lead'],
  'dependencies-cleared': ['responder', 'lead'],
  abort: ['lead'],
  rollback: ['lead'],
};
