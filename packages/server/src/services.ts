import type { RequestType } from "@parley/protocol";
import type { Logger } from "pino";
import type { AccountService } from "./accounts/account-service.js";
import type { OperatorFeed } from "./admin/operator-feed.js";
import type { OperatorService } from "./admin/operator-service.js";
import type { RefusalSummary } from "./audit/refusal-summary.js";
import type { CallService } from "./calls/call-service.js";
import type { Cluster } from "./cluster/cluster.js";
import type { ServerConfig } from "./config.js";
import type { PhonebookService } from "./phonebook/phonebook-service.js";
import type { Device, PresenceService } from "./presence/presence-service.js";
import type { ServerStats } from "./stats/server-stats.js";

/** Where a connection's call requests go when another node owns the call. */
export interface CallRouter {
  forward(type: RequestType, params: unknown, device: Device | undefined): Promise<unknown> | undefined;
}

/** What request handlers may use. Built once by the composition root. */
export interface Services {
  config: ServerConfig;
  logger: Logger;
  version: string;
  /** Random per server start (`hello`): lets a reconnecting client tell that the server restarted. */
  instanceId: string;
  accounts: AccountService;
  presence: PresenceService;
  phonebook: PhonebookService;
  calls: CallService;
  stats: ServerStats;
  operator: OperatorService;
  operatorFeed: OperatorFeed;
  /** Refused attempts (logins, connections, registrations): counted, audited in summaries. */
  refusals: RefusalSummary;
  /** With --redis: this node's membership of the cluster (logins are refused while it is unavailable). */
  cluster?: Cluster | undefined;
  /**
   * With --redis: sends a request about a call another node owns to that node and returns its
   * answer (cluster/call-bus.ts); undefined when the request is this node's to run.
   */
  callRouter?: CallRouter | undefined;
}
