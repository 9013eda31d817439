import type { NodeInfo } from "../cluster/node-registry.js";
import type { NodePresence } from "../presence/presence-service.js";

/**
 * What the operator service sees of a cluster (`--redis`) and may do across it: the live nodes,
 * where each user is online, and a kick on another node. Implemented by cluster/admin-bus.ts;
 * absent on a single server.
 */
export interface ClusterView {
  /** This node's id. */
  readonly nodeId: string;
  /** The live nodes, this one first, as of their last heartbeats. */
  liveNodes(): NodeInfo[];
  /** Where a user is online: node id -> their presence there (this node included). */
  nodesOf(userId: number): Map<string, NodePresence>;
  /** The users online on the other nodes. */
  remoteUserIds(): Set<number>;
  /**
   * Closes every device of the user on `node` (another node): resolves with how many were closed
   * there, rejects with NODE_UNREACHABLE when that node does not answer in time.
   */
  kickOn(node: string, userId: number, actor: string): Promise<number>;
}
