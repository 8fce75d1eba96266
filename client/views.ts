// Ready-made views of the Temporal UI: one visibility query per question an operator asks, as a
// link to open. Dry runs are left out of every one of them (CordonDryRun, set at start).
import { SA } from '../workflows/search-attributes';

export interface View {
  name: string;
  /** What the view answers, as printed beside its link. */
  title: string;
  query: string;
}

const REAL = `WorkflowType = 'containment' AND ${SA.dryRun.name} = false`;
const OPEN = `${REAL} AND ExecutionStatus = 'Running'`;

export const VIEWS: View[] = [
  { name: 'awaiting-approval', title: 'awaiting approval', query: `${OPEN} AND ${SA.waitingFor.name} = 'approval'` },
  { name: 'needs-attention', title: 'needs attention', query: `${OPEN} AND ${SA.status.name} = 'needs-attention'` },
  { name: 'held', title: 'held', query: `${OPEN} AND ${SA.status.name} = 'held'` },
  { name: 'contained', title: 'contained (open for rollback)', query: `${OPEN} AND ${SA.status.name} = 'contained'` },
  { name: 'real', title: 'real containments (no dry runs)', query: REAL },
];

/** The Temporal UI's address: CORDON_UI_URL, or the local dev server's UI port. */
export function uiBase(env: NodeJS.ProcessEnv = process.env): string {
  return (env.CORDON_UI_URL ?? `http://127.0.0.1:${env.CORDON_UI_PORT ?? 8233}`).replace(/\/+$/, '');
}

/** A link that opens the UI's workflow list filtered by `query`. */
export function uiLink(base: string, namespace: string, query: string): string {
  // Quotes and parentheses encoded too, so that terminals and chat tools keep the whole link clickable.
  const strict = (v: string) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${base}/namespaces/${strict(namespace)}/workflows?query=${strict(query)}`;
}

/** The views as lines to print: title, then link. */
export function viewLines(base: string, namespace: string): string[] {
  const width = Math.max(...VIEWS.map((v) => v.title.length));
  return VIEWS.map((v) => `  ${v.title.padEnd(width)}  ${uiLink(base, namespace, v.query)}`);
}
