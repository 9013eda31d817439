import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { RefusalSummary } from "../audit/refusal-summary.js";
import type { CallRecord } from "../calls/call-history-store.js";
import { type CallService, liveCallState } from "../calls/call-service.js";
import type { MediaRelay } from "../media/index.js";
import type { PresenceService } from "../presence/presence-service.js";
import type { ServerStats } from "../stats/server-stats.js";

/**
 * Fills a counter from a running total kept elsewhere (ServerStats, the media relay): at each
 * scrape the counter is set to the totals, so the source of truth stays in one place and
 * Prometheus still sees a monotonic counter.
 */
function fromTotals(counter: Counter<string>, totals: Iterable<[Record<string, string>, number]>): void {
  counter.reset();
  for (const [labels, value] of totals) counter.inc(labels, value);
}

/**
 * O3: Prometheus metrics (prom-client), in a registry of their own (not the process-global one,
 * so two servers in one process, as in the tests, never mix). Gauges and totals are read at
 * scrape time from the services; call outcomes are counted as calls are recorded.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #callsEnded: Counter<"outcome" | "reason">;

  constructor(deps: {
    presence: PresenceService;
    calls: CallService;
    media: MediaRelay;
    stats: ServerStats;
    refusals: RefusalSummary;
    connections: () => number;
    /**
     * In a cluster (`--redis`): this node's id, put on every series as the label `node` (so one
     * Prometheus can scrape every node), and how many live nodes it sees. Absent: no label.
     */
    node?: { id: string; liveNodes: () => number };
  }) {
    const { presence, calls, media, stats, refusals, connections, node } = deps;
    const registers = [this.registry];
    if (node) this.registry.setDefaultLabels({ node: node.id });
    collectDefaultMetrics({ register: this.registry });
    if (node) {
      new Gauge({
        name: "parley_cluster_nodes",
        help: "Live nodes of the cluster as this node sees them (itself included).",
        registers,
        collect() {
          this.set(node.liveNodes());
        },
      });
    }

    new Gauge({
      name: "parley_connected_users",
      help: "Users with at least one logged-in device.",
      registers,
      collect() {
        this.set(presence.onlineUserCount());
      },
    });
    new Gauge({
      name: "parley_connected_devices",
      help: "Logged-in devices (signaling connections with a session).",
      registers,
      collect() {
        this.set(presence.allDevices().length);
      },
    });
    new Gauge({
      name: "parley_signaling_connections",
      help: "Open signaling WebSocket connections, logged in or not.",
      registers,
      collect() {
        this.set(connections());
      },
    });
    new Gauge({
      name: "parley_active_calls",
      help: "Live calls by state (ringing, active, held, conference).",
      labelNames: ["state"],
      registers,
      collect() {
        const counts = { ringing: 0, active: 0, held: 0, conference: 0 };
        for (const call of calls.liveCalls()) counts[liveCallState(call)]++;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    this.#callsEnded = new Counter({
      name: "parley_calls_total",
      help: "Calls that ended (or were refused), by outcome and end reason.",
      labelNames: ["outcome", "reason"],
      registers,
    });
    const requests = new Counter({
      name: "parley_signaling_requests_total",
      help: "Signaling requests received, by request type.",
      labelNames: ["type"],
      registers,
      collect() {
        fromTotals(
          requests,
          [...stats.requests].map(([type, n]) => [{ type }, n]),
        );
      },
    });
    const errors = new Counter({
      name: "parley_signaling_errors_total",
      help: "Error replies sent, by error code.",
      labelNames: ["code"],
      registers,
      collect() {
        fromTotals(
          errors,
          [...stats.errors].map(([code, n]) => [{ code }, n]),
        );
      },
    });
    const messages = new Counter({
      name: "parley_signaling_messages_total",
      help: "Signaling messages (frames) received and sent.",
      labelNames: ["direction"],
      registers,
      collect() {
        fromTotals(messages, [
          [{ direction: "in" }, stats.messagesIn],
          [{ direction: "out" }, stats.messagesOut],
        ]);
      },
    });
    const failedLogins = new Counter({
      name: "parley_failed_logins_total",
      help: "Refused logins, by reason (wrong_password, unknown_user, disabled, rate_limited).",
      labelNames: ["reason"],
      registers,
    });
    const refusedConnections = new Counter({
      name: "parley_refused_connections_total",
      help: "Signaling connections refused or closed by a limit, by reason (e.g. per_address, global, login_timeout).",
      labelNames: ["reason"],
      registers,
    });
    const refusedRegistrations = new Counter({
      name: "parley_refused_registrations_total",
      help: "Registrations refused by a limit, by reason.",
      labelNames: ["reason"],
      registers,
    });
    // Every refusal is counted here, though the audit log summarises them (RefusalSummary).
    refusals.onRefused((refusal) => {
      if (refusal.action === "login_failed") failedLogins.inc({ reason: refusal.reason });
      else if (refusal.action === "connection_refused") refusedConnections.inc({ reason: refusal.reason });
      else if (refusal.action === "register_refused") refusedRegistrations.inc({ reason: refusal.reason });
    });
    const packets = new Counter({
      name: "parley_relayed_packets_total",
      help: "RTP packets forwarded by the media relay.",
      registers,
      collect() {
        fromTotals(packets, [[{}, media.stats().packetsForwarded]]);
      },
    });
    const bytes = new Counter({
      name: "parley_relayed_bytes_total",
      help: "RTP payload bytes forwarded by the media relay.",
      registers,
      collect() {
        fromTotals(bytes, [[{}, media.stats().bytesForwarded]]);
      },
    });
    const dropped = new Counter({
      name: "parley_media_dropped_total",
      help: "Datagrams the media relay dropped, by reason (replay, too_old, wrong_source, auth_failed, unknown_ssrc, malformed).",
      labelNames: ["reason"],
      registers,
      collect() {
        fromTotals(
          dropped,
          Object.entries(media.drops()).map(([reason, n]) => [{ reason }, n]),
        );
      },
    });
    new Gauge({
      name: "parley_media_legs",
      help: "Open media legs (one per device in a call).",
      registers,
      collect() {
        this.set(media.stats().legs);
      },
    });
    new Gauge({
      name: "parley_media_packets_lost",
      help: "Packets lost on the way to the relay (from RTP sequence numbers), summed over the open legs of live calls.",
      registers,
      async collect() {
        let lost = 0;
        for (const call of calls.liveCalls()) {
          for (const leg of call.legs) lost += (await leg.quality()).packetsLost ?? 0;
        }
        this.set(lost);
      },
    });
  }

  /** Counts a call written to the history (answered, refused or unanswered). */
  callRecorded(call: Pick<CallRecord, "outcome" | "endReason">): void {
    this.#callsEnded.inc({ outcome: call.outcome, reason: call.endReason ?? "refused" });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
