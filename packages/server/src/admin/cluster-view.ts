import type { OperatorCall } from "@parley/protocol";
import type { NodeInfo } from "../cluster/node-registry.js";
import type { NodePresence } from "../presence/presence-service.js";

/** A call ended by the operator: its id and who was in it. */
export interface EndedCall {
  callId: string;
  participants: string[];
}

/** What a node does for an operator of another node: list its own calls, end one of them. */
export interface LocalCalls {
  /** This node's live calls, as the operator sees them. */
  calls(): Promise<OperatorCall[]>;
  /** Ends one of this node's calls (a unique id prefix is enough); CALL_NOT_FOUND if none or several match. */
  endCall(idOrPrefix: string, actor: string): EndedCall;
}

/** The live calls of the other nodes, and the live nodes that did not send theirs in time. */
export interface RemoteCalls {
  calls: OperatorCall[];
  unanswered: string[];
}

/**
 * What the operator service sees of a cluster (`--redis`) and may do across it: the live nodes,
 * where each user is online, the other nodes' calls, and kicks and hang-ups on another node.
 * Implemented by cluster/admin-bus.ts; absent on a single server.
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
  /** What this node answers when another node's operator lists or ends calls (set once, at start). */
  serveCalls(local: LocalCalls): void;
  /** The live calls of every other live node (each with its `node`), and the nodes that did not answer in time. */
  remoteCalls(): Promise<RemoteCalls>;
  /**
   * Ends the call `idOrPrefix` on `node` (another node, which listed it): resolves with the call
   * ended there, rejects with that node's error (CALL_NOT_FOUND) or NODE_UNREACHABLE when it does
   * not answer in time.
   */
  endCallOn(node: string, idOrPrefix: string, actor: string): Promise<EndedCall>;
}
