// FROZEN: the command messages as v2 defined them (self-declared `by`), for containments that
// replay on workflows/legacy/containment-v2.ts. Same names as today's, so their histories match.
import { defineSignal, defineUpdate } from '@temporalio/workflow';
import type { LegacyOperatorCommand, Status } from '../schemas';

export const legacyCommandSignal = defineSignal<[LegacyOperatorCommand]>('command');
export const legacyCommandUpdate = defineUpdate<{ status: Status; accepted: string }, [LegacyOperatorCommand]>('command');
