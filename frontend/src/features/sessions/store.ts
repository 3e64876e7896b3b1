import type { SessionSummary } from '@/lib/protocol';

export interface TreeNode {
  summary: SessionSummary;
  children: TreeNode[];
}

/** The newest summary per session wins; a deleted one leaves the listing. */
export function mergeSummaries(
  current: ReadonlyMap<string, SessionSummary>,
  incoming: readonly SessionSummary[],
): Map<string, SessionSummary> {
  const next = new Map(current);
  for (const summary of incoming) {
    const known = next.get(summary.session_id);
    if (known && known.updated_offset > summary.updated_offset) continue;
    if (summary.deleted) next.delete(summary.session_id);
    else next.set(summary.session_id, summary);
  }
  return next;
}

/** Forks under their parent (oldest fork first), roots most recently updated first. */
export function forkTree(sessions: ReadonlyMap<string, SessionSummary>, matches?: (s: SessionSummary) => boolean): TreeNode[] {
  const nodes = new Map<string, TreeNode>();
  for (const summary of sessions.values()) nodes.set(summary.session_id, { summary, children: [] });
  const roots: TreeNode[] = [];
  for (const node of nodes.values()) {
    const parent = node.summary.parent ? nodes.get(node.summary.parent.session_id) : undefined;
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  for (const node of nodes.values()) node.children.sort((a, b) => a.summary.created_ms - b.summary.created_ms);
  roots.sort((a, b) => b.summary.updated_ms - a.summary.updated_ms);
  if (!matches) return roots;
  // A filter keeps a match with its ancestors, so the tree stays a tree.
  const keep = (node: TreeNode): TreeNode | null => {
    const children = node.children.map(keep).filter((c): c is TreeNode => c !== null);
    return matches(node.summary) || children.length > 0 ? { summary: node.summary, children } : null;
  };
  return roots.map(keep).filter((n): n is TreeNode => n !== null);
}

export function sessionTitle(summary: Pick<SessionSummary, 'title' | 'preview'>): string {
  return summary.title || summary.preview || 'New session';
}
