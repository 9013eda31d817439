import type { OperatorCall, OperatorLeg, OperatorSnapshot, OperatorUser } from "@parley/protocol";
import { useId } from "react";
import { formatDuration, PresenceBadge } from "../app/ui.js";
import { type AdminKey, useAdminI18n } from "./admin-i18n.js";
import type { Ask } from "./confirmation.js";
import type { OperatorStore } from "./operator-store.js";

interface PanelProps {
  snapshot: OperatorSnapshot;
  store: OperatorStore;
  ask: Ask;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

function uptime(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const rest = formatDuration((seconds % 86400) * 1000);
  return d > 0 ? `${d} d ${rest}` : rest;
}

/** Server health at a glance, and the self-signup switch. */
export function ServerPanel({ snapshot, store, ask }: PanelProps) {
  const { t } = useAdminI18n();
  const headingId = useId();
  const s = snapshot.server;
  const stats: [AdminKey, string, string][] = [
    ["version", s.version, "version"],
    ["uptime", uptime(s.uptimeSeconds), "uptime"],
    ["cpu", `${s.cpuPercent.toFixed(1)} %`, "cpu"],
    ["memory", `${mib(s.rssBytes)} (heap ${mib(s.heapUsedBytes)})`, "memory"],
    ["connections", String(s.connections), "connections"],
    ["usersOnline", `${s.usersOnline} / ${s.accounts}`, "users-online"],
    ["calls", String(s.calls), "calls"],
    ["mediaLegs", String(s.mediaLegs), "media-legs"],
    ["packetsPerSecond", String(s.packetsPerSecond), "packets-per-second"],
    ["packetsRelayed", s.packetsRelayed.toLocaleString(), "packets-relayed"],
  ];
  const next = !s.signupEnabled;
  return (
    <section className="card" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>{t("server")}</h2>
      </div>
      <dl className="operator__stats">
        {stats.map(([label, value, id]) => (
          <div key={id} className="operator__stat">
            <dt>{t(label)}</dt>
            <dd data-testid={`server-${id}`}>{value}</dd>
          </div>
        ))}
        <div className="operator__stat">
          <dt>{t("signup")}</dt>
          <dd data-testid="server-signup" data-enabled={String(s.signupEnabled)}>
            {t(s.signupEnabled ? "signupOn" : "signupOff")}
          </dd>
        </div>
      </dl>
      <div>
        <button
          type="button"
          className="btn btn--small"
          onClick={() =>
            ask({
              message: t(next ? "confirmSignupOn" : "confirmSignupOff"),
              async run() {
                const { enabled } = await store.request("operator.setSignup", { enabled: next });
                return t("doneSignup", { state: t(enabled ? "signupOn" : "signupOff").toLowerCase() });
              },
            })
          }
        >
          {t(next ? "turnSignupOn" : "turnSignupOff")}
        </button>
      </div>
    </section>
  );
}

const STATE_LABELS: Record<OperatorCall["state"], AdminKey> = {
  ringing: "stateRinging",
  active: "stateActive",
  held: "stateHeld",
  conference: "stateConference",
};

function LegLine({ leg }: { leg: OperatorLeg }) {
  const { t } = useAdminI18n();
  const parts = [
    `${t("packetsIn")} ${leg.packetsIn}`,
    `${t("packetsOut")} ${leg.packetsOut}`,
    leg.packetsLost === null ? null : `${t("lost")} ${leg.packetsLost}`,
    leg.jitterMs === null ? null : `${t("jitter")} ${leg.jitterMs.toFixed(1)} ms`,
    leg.roundTripMs === null ? null : `${t("rtt")} ${leg.roundTripMs.toFixed(1)} ms`,
  ].filter((p) => p !== null);
  return (
    <li
      data-testid="leg"
      data-username={leg.username ?? ""}
      data-packets-in={leg.packetsIn}
      data-packets-out={leg.packetsOut}
      data-state={leg.state}
    >
      <strong>{leg.username ?? `#${leg.connectionId}`}</strong>{" "}
      {leg.state === "connected" || leg.packetsIn > 0 ? parts.join(" · ") : t("legConnecting")}
    </li>
  );
}

/** Live calls: participants, state, a duration that ticks with every snapshot, per-leg counters. */
export function CallsPanel({ snapshot, store, ask }: PanelProps) {
  const { t } = useAdminI18n();
  const headingId = useId();
  // In a cluster: every node's calls, each with the node that owns it.
  const clustered = snapshot.nodes !== undefined;
  const self = snapshot.nodes?.find((n) => n.self)?.id;
  const unanswered = snapshot.unansweredNodes ?? [];
  return (
    <section className="card" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>
          {t("liveCalls")} <span className="count-badge">{snapshot.calls.length}</span>
        </h2>
      </div>
      {unanswered.length > 0 ? (
        <p className="muted" role="status" data-testid="calls-unanswered">
          {t("callsNotAnswered", { nodes: unanswered.map((n) => n.slice(0, 8)).join(", ") })}
        </p>
      ) : null}
      {snapshot.calls.length === 0 ? (
        <p className="muted">{t("noCalls")}</p>
      ) : (
        <div className="table-wrap">
          <table className="operator__table">
            <thead>
              <tr>
                <th scope="col">{t("participants")}</th>
                {clustered ? <th scope="col">{t("node")}</th> : null}
                <th scope="col">{t("state")}</th>
                <th scope="col">{t("duration")}</th>
                <th scope="col">{t("media")}</th>
                <th scope="col">{t("actions")}</th>
              </tr>
            </thead>
            <tbody>
              {snapshot.calls.map((call) => {
                const names = call.participants.join(" and ");
                return (
                  <tr
                    key={call.callId}
                    data-testid="live-call"
                    data-call-id={call.callId}
                    data-state={call.state}
                    data-node={call.node}
                  >
                    <td data-testid="call-participants">{call.participants.join(", ")}</td>
                    {clustered ? (
                      <td data-testid="call-node">
                        <code title={call.node}>{call.node?.slice(0, 8)}</code>{" "}
                        {call.node === self ? <span className="tag">{t("thisNode")}</span> : null}
                      </td>
                    ) : null}
                    <td>
                      <span className={`call-state call-state--${call.state}`}>{t(STATE_LABELS[call.state])}</span>
                    </td>
                    <td>
                      <span role="timer" data-testid="call-duration" data-ms={call.durationMs}>
                        {formatDuration(call.durationMs)}
                      </span>
                    </td>
                    <td>
                      <ul className="operator__legs">
                        {call.legs.map((leg) => (
                          <LegLine key={leg.connectionId} leg={leg} />
                        ))}
                      </ul>
                    </td>
                    <td>
                      <button
                        type="button"
                        className="btn btn--small btn--danger"
                        aria-label={t("endCall", { names })}
                        onClick={() =>
                          ask({
                            message: t("confirmEndCall", { names }),
                            danger: true,
                            async run() {
                              await store.request("operator.endCall", { callId: call.callId });
                              return t("doneEndCall", { names });
                            },
                          })
                        }
                      >
                        {t("endCallShort")}
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** Accounts, online first: devices with addresses (operators only), current call, and actions. */
export function UsersPanel({ snapshot, store, ask }: PanelProps) {
  const { t } = useAdminI18n();
  const headingId = useId();
  const online = snapshot.users.filter(isOnline).length;
  return (
    <section className="card" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>
          {t("connectedUsers")}{" "}
          <span className="count-badge">
            {online} / {snapshot.users.length}
          </span>
        </h2>
      </div>
      {snapshot.users.length === 0 ? (
        <p className="muted">{t("noUsers")}</p>
      ) : (
        <div className="table-wrap">
          <table className="operator__table">
            <thead>
              <tr>
                <th scope="col">{t("user")}</th>
                <th scope="col">{t("status")}</th>
                <th scope="col">{t("devices")}</th>
                <th scope="col">{t("currentCall")}</th>
                <th scope="col">{t("actions")}</th>
              </tr>
            </thead>
            <tbody>
              {snapshot.users.map((user) => (
                <UserRow
                  key={user.id}
                  user={user}
                  store={store}
                  ask={ask}
                  self={snapshot.nodes?.find((n) => n.self)?.id}
                />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** Online here, or (in a cluster) on any node. */
function isOnline(user: OperatorUser): boolean {
  return user.devices.length > 0 || (user.nodes?.length ?? 0) > 0;
}

function UserRow({ user, store, ask, self }: { user: OperatorUser; store: OperatorStore; ask: Ask; self?: string }) {
  const { t } = useAdminI18n();
  const name = user.username;
  // In a cluster: the devices on other nodes, without addresses (their node holds those).
  const elsewhere = (user.nodes ?? []).filter((n) => n.node !== self);
  return (
    <tr data-testid="operator-user" data-username={name} data-disabled={String(user.disabled)}>
      <td>
        <div className="operator__who">
          <strong>{user.displayName}</strong> <span className="muted">@{name}</span>
          {user.operator ? <span className="tag">{t("operatorBadge")}</span> : null}
          {user.disabled ? <span className="tag tag--danger">{t("disabledBadge")}</span> : null}
        </div>
      </td>
      <td>
        <PresenceBadge status={user.status} />
      </td>
      <td>
        {!isOnline(user) ? (
          <span className="muted">{t("none")}</span>
        ) : (
          <ul className="operator__devices">
            {user.devices.map((d) => (
              <li key={d.connectionId} data-testid="device">
                {d.deviceName} · <code data-testid="device-address">{d.address}</code> ·{" "}
                <span title={t("connectedSince")}>{new Date(d.connectedAt).toLocaleTimeString()}</span>
              </li>
            ))}
            {elsewhere.map((n) => (
              <li key={n.node} data-testid="device-elsewhere" data-node={n.node}>
                {t("onNode", { node: n.node.slice(0, 8), count: n.devices })}
              </li>
            ))}
          </ul>
        )}
      </td>
      <td>{user.callId ? <span className="tag">{t("inCall")}</span> : <span className="muted">{t("none")}</span>}</td>
      <td>
        <div className="operator__actions">
          <button
            type="button"
            className="btn btn--small"
            aria-label={t("kick", { name })}
            disabled={!isOnline(user)}
            onClick={() =>
              ask({
                message: t("confirmKick", { name }),
                async run() {
                  const { devices } = await store.request("operator.kick", { username: name });
                  return t("doneKick", { name, count: devices });
                },
              })
            }
          >
            {t("kickShort")}
          </button>
          <button
            type="button"
            className={`btn btn--small${user.disabled ? "" : " btn--danger-outline"}`}
            aria-label={t(user.disabled ? "enable" : "disable", { name })}
            onClick={() =>
              ask({
                message: t(user.disabled ? "confirmEnable" : "confirmDisable", { name }),
                danger: !user.disabled,
                async run() {
                  const { user: updated } = await store.request("operator.setDisabled", {
                    username: name,
                    disabled: !user.disabled,
                  });
                  return t(updated.disabled ? "doneDisable" : "doneEnable", { name });
                },
              })
            }
          >
            {t(user.disabled ? "enableShort" : "disableShort")}
          </button>
          <button
            type="button"
            className="btn btn--small"
            aria-label={t("resetPassword", { name })}
            onClick={() =>
              ask({
                message: t("confirmReset", { name }),
                withPassword: true,
                async run(password) {
                  const result = await store.request("operator.resetPassword", {
                    username: name,
                    ...(password ? { password } : {}),
                  });
                  return result.password
                    ? t("doneResetRandom", { name, password: result.password })
                    : t("doneReset", { name });
                },
              })
            }
          >
            {t("resetPasswordShort")}
          </button>
        </div>
      </td>
    </tr>
  );
}
