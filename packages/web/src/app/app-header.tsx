import type { ConnectionState } from "@parley/client";
import type { SelectableStatus } from "@parley/protocol";
import { useId } from "react";
import { type MessageKey, useI18n } from "../i18n.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { LanguageSelect } from "./language-select.js";
import { Avatar, errorText, useAction } from "./ui.js";

const CONNECTION_LABELS: Record<ConnectionState, MessageKey> = {
  connecting: "connConnecting",
  connected: "connConnected",
  reconnecting: "connReconnecting",
  disconnected: "connDisconnected",
};

const STATUS_OPTIONS: { value: SelectableStatus; label: MessageKey }[] = [
  { value: "available", label: "statusAvailable" },
  { value: "away", label: "statusAway" },
  { value: "busy", label: "statusDoNotDisturb" },
];

/**
 * The header's connection indicator (softphone and operator page): `role="status"` named by its
 * text, `data-testid="connection-status"`, `data-state` the connection state.
 */
export function ConnectionIndicator({ connection }: { connection: ConnectionState }) {
  const { t } = useI18n();
  const text = t(CONNECTION_LABELS[connection]);
  return (
    <div
      className={`connection connection--${connection}`}
      role="status"
      aria-label={text}
      data-testid="connection-status"
      data-state={connection}
    >
      <span className="connection__dot" aria-hidden="true" />
      {text}
    </div>
  );
}

export function AppHeader() {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const statusId = useId();
  const action = useAction();
  const self = state.self;
  if (!self) return null;
  const shownStatus = state.call?.phase === "active" ? "in-call" : self.status;

  return (
    <header className="topbar">
      <div className="brand">
        <span className="brand__mark" aria-hidden="true">
          P
        </span>
        <span className="brand__name">{t("appName")}</span>
      </div>
      <div className="topbar__me">
        <Avatar name={self.displayName} seed={self.username} status={shownStatus} />
        <div className="topbar__who">
          <span className="topbar__name" data-testid="self-name">
            {self.displayName}
          </span>
          <span className="topbar__username">@{self.username}</span>
        </div>
      </div>
      <div className="topbar__controls">
        {self.operator ? (
          <a className="btn btn--small btn--ghost" href="/admin">
            {t("operatorConsole")}
          </a>
        ) : null}
        <div className="inline-field">
          <label htmlFor={statusId}>{t("status")}</label>
          <select
            id={statusId}
            value={self.status}
            disabled={state.connection !== "connected" || action.pending}
            onChange={(e) => void action.run(() => store.setStatus(e.target.value as SelectableStatus))}
          >
            {STATUS_OPTIONS.map((o) => (
              <option key={o.value} value={o.value}>
                {t(o.label)}
              </option>
            ))}
          </select>
        </div>
        <ConnectionIndicator connection={state.connection} />
        {state.connection === "disconnected" ? (
          <button type="button" className="btn btn--small" onClick={() => void store.reconnect()}>
            {t("reconnect")}
          </button>
        ) : null}
        <LanguageSelect />
      </div>
      {action.error !== undefined ? (
        <p className="topbar__error" role="alert">
          {errorText(t, action.error)}
        </p>
      ) : null}
    </header>
  );
}
