import type { CallHistoryEntry, CallOutcome } from "@parley/protocol";
import { useId } from "react";
import { type Language, type MessageKey, useI18n } from "../i18n.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { Avatar, formatDuration, Icon } from "./ui.js";

const OUTCOMES: Record<CallOutcome, MessageKey> = {
  answered: "outcomeAnswered",
  declined: "outcomeDeclined",
  busy: "outcomeBusy",
  no_answer: "outcomeNoAnswer",
  cancelled: "outcomeCancelled",
  unreachable: "outcomeUnreachable",
  failed: "outcomeFailed",
  interrupted: "outcomeInterrupted",
};

function formatWhen(iso: string, language: Language, t: (key: MessageKey) => string): string {
  const date = new Date(iso);
  const time = date.toLocaleTimeString(language, { hour: "2-digit", minute: "2-digit" });
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (date.toDateString() === today.toDateString()) return `${t("today")} ${time}`;
  if (date.toDateString() === yesterday.toDateString()) return `${t("yesterday")} ${time}`;
  const day = date.toLocaleDateString(language, {
    day: "numeric",
    month: "short",
    ...(date.getFullYear() !== today.getFullYear() ? { year: "numeric" } : {}),
  });
  return `${day} ${time}`;
}

export function HistoryPage() {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const headingId = useId();
  const { entries, status } = state.history;

  return (
    <section className="card" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>{t("history")}</h2>
        <button
          type="button"
          className="btn btn--small"
          onClick={() => void store.refreshHistory()}
          disabled={state.connection !== "connected"}
        >
          {t("refresh")}
        </button>
      </div>
      {status === "loading" && entries.length === 0 ? (
        <p className="empty" role="status">
          {t("loading")}
        </p>
      ) : entries.length === 0 ? (
        <p className="empty">{t("historyEmpty")}</p>
      ) : (
        <ol className="history-list" aria-labelledby={headingId}>
          {entries.map((entry) => (
            <HistoryRow key={entry.callId} entry={entry} />
          ))}
        </ol>
      )}
    </section>
  );
}

function HistoryRow({ entry }: { entry: CallHistoryEntry }) {
  const { t, language } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const kind = entry.missed ? "missed" : entry.direction;
  const directionText = t(kind === "missed" ? "dirMissed" : kind === "incoming" ? "dirIncoming" : "dirOutgoing");
  const arrow = kind === "outgoing" ? "↗" : kind === "incoming" ? "↙" : "↙";
  const peer = state.directory.find((u) => u.id === entry.peer.userId);
  const answered = entry.answeredAt !== null;

  return (
    <li
      className={`history-item history-item--${kind}`}
      data-direction={entry.direction}
      data-outcome={entry.outcome}
      data-missed={entry.missed}
    >
      <span className={`history-item__dir history-item__dir--${kind}`}>
        <span className="history-item__arrow" aria-hidden="true">
          {arrow}
        </span>
        {directionText}
      </span>
      <Avatar name={entry.peer.displayName} seed={entry.peer.username} size="sm" />
      <div className="history-item__main">
        <span className="history-item__name">
          {entry.conference ? entry.participants.map((p) => p.displayName).join(", ") : entry.peer.displayName}
        </span>
        <span className="contact__sub">
          {entry.peer.userId === null ? t("deletedUser") : `@${entry.peer.username}`}
        </span>
      </div>
      <time className="history-item__time" dateTime={entry.createdAt}>
        {formatWhen(entry.createdAt, language, t)}
      </time>
      <span className="history-item__duration">
        <span className="visually-hidden">{t("duration")} </span>
        {answered ? formatDuration(entry.durationMs) : t("noDuration")}
      </span>
      <span className={`history-item__outcome outcome--${entry.outcome}`}>{t(OUTCOMES[entry.outcome])}</span>
      <span className="history-item__actions">
        {peer ? (
          <button
            type="button"
            className="btn btn--icon btn--call-ghost"
            aria-label={t("callBackName", { name: peer.displayName })}
            title={t("callBackName", { name: peer.displayName })}
            disabled={peer.status === "offline" || !state.canCall || state.connection !== "connected"}
            onClick={() => void store.calls.placeCall(peer.username, peer.displayName)}
          >
            <Icon name="phone" />
          </button>
        ) : null}
      </span>
    </li>
  );
}
