import { useEffect, useId, useRef } from "react";
import { useI18n } from "../i18n.js";
import type { CallQuality } from "../media/call-stats.js";
import { END_MESSAGES } from "../state/call-end.js";
import type { CallView } from "../state/store.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { AudioSettings } from "./audio-settings.js";
import { CallTimer } from "./call-timer.js";
import { AddParticipant, ParticipantList } from "./conference.js";
import { RemoteAudio } from "./remote-audio.js";
import { Avatar, Icon } from "./ui.js";

/**
 * The calls, above whatever page is open: the call in front (ringing out, ringing in as a
 * dialog, or in progress), then any other call (a waiting call rings as a dialog too; held calls
 * can be resumed or ended), and for a few seconds after a call ends, why it ended.
 */
export function CallArea() {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const main = state.call;
  const others = state.calls.filter((c) => c !== main);
  const notice = state.endNotice;

  return (
    <>
      {main ? (
        <section
          className={`call-area call-area--${main.phase}${main.held ? " call-area--held" : ""}`}
          aria-label={t("callPanel")}
          data-testid="call-panel"
          data-phase={main.phase}
          data-direction={main.direction}
        >
          {state.calls.flatMap((c) =>
            (state.remoteStreams[c.key] ?? []).map((stream, slot) => (
              <RemoteAudio
                // biome-ignore lint/suspicious/noArrayIndexKey: one element per receive slot, which never moves
                key={`${c.key}-${slot}`}
                stream={stream}
                main={c === main}
                slot={slot}
                active={c.phase === "active"}
              />
            )),
          )}
          {main.phase === "active" ? (
            <InCallView call={main} />
          ) : main.direction === "incoming" ? (
            <IncomingCallDialog call={main} />
          ) : (
            <OutgoingCallView call={main} />
          )}
          {others.length > 0 ? (
            <fieldset className="call-others">
              <legend className="visually-hidden">{t("otherCalls")}</legend>
              {others.map((c) =>
                c.phase === "active" ? (
                  <HeldCallRow key={c.key} call={c} />
                ) : c.direction === "incoming" ? (
                  <IncomingCallDialog key={c.key} call={c} waitingBehind={main.peerName} />
                ) : (
                  <OutgoingCallView key={c.key} call={c} />
                ),
              )}
            </fieldset>
          ) : null}
        </section>
      ) : null}
      <div className={`call-notice${notice ? " is-visible" : ""}`}>
        <p className="call-notice__text" aria-live="polite" data-testid="call-end-reason" data-kind={notice?.kind}>
          {notice ? t(END_MESSAGES[notice.kind], { name: notice.name }) : ""}
        </p>
        {notice ? (
          <button type="button" className="btn btn--small btn--ghost-light" onClick={() => store.dismissEndNotice()}>
            {t("dismiss")}
          </button>
        ) : null}
      </div>
    </>
  );
}

function OutgoingCallView({ call }: { call: CallView }) {
  const { t } = useI18n();
  const store = useStore();
  return (
    <div className="call-card">
      <div className="call-card__peer">
        <Avatar name={call.peerName} seed={call.peerUsername} size="lg" />
        <div className="call-card__text">
          <p className="call-card__title" data-testid="call-status">
            {t("calling", { name: call.peerName })}
          </p>
          <p className="call-card__sub">{call.calleeRinging ? t("ringing") : t("connectingCall")}</p>
        </div>
      </div>
      {call.conference && call.participants.length > 0 ? <ParticipantList call={call} /> : null}
      <div className="call-card__actions">
        <button
          type="button"
          className="btn btn--hangup"
          disabled={call.busy}
          onClick={() => void store.hangup(call.key)}
        >
          <Icon name="phone-off" />
          {t("cancel")}
        </button>
      </div>
    </div>
  );
}

function IncomingCallDialog({ call, waitingBehind }: { call: CallView; waitingBehind?: string }) {
  const { t } = useI18n();
  const store = useStore();
  const ref = useRef<HTMLDivElement>(null);
  const textId = useId();

  useEffect(() => {
    // Take focus so the keyboard is one Tab from "Answer", unless the user is typing somewhere.
    const active = document.activeElement;
    const typing =
      active instanceof HTMLTextAreaElement ||
      active instanceof HTMLSelectElement ||
      (active instanceof HTMLInputElement && !["button", "checkbox", "radio"].includes(active.type));
    if (!typing) ref.current?.focus();
  }, []);

  return (
    <div
      ref={ref}
      className={`call-card call-card--incoming${waitingBehind ? " call-card--waiting" : ""}`}
      role="dialog"
      aria-label={t("incomingCall")}
      aria-describedby={textId}
      tabIndex={-1}
    >
      <div className="call-card__peer">
        <Avatar name={call.peerName} seed={call.peerUsername} size={waitingBehind ? "md" : "lg"} />
        <div className="call-card__text">
          <p className="call-card__eyebrow">{waitingBehind ? t("callWaiting") : t("incomingCall")}</p>
          <p className="call-card__title" id={textId}>
            {t("isCalling", { name: call.peerName })}
          </p>
          <p className="call-card__sub">
            @{call.peerUsername}
            {call.conference ? ` · ${t("groupCallWith", { names: groupNames(call) })}` : ""}
            {waitingBehind ? ` · ${t("waitingHint", { name: waitingBehind })}` : ""}
          </p>
        </div>
      </div>
      <div className="call-card__actions">
        <button
          type="button"
          className="btn btn--answer"
          disabled={call.busy}
          onClick={() => void store.answer(call.key)}
        >
          <Icon name="phone" />
          {t("answer")}
        </button>
        <button
          type="button"
          className="btn btn--hangup"
          disabled={call.busy}
          onClick={() => void store.decline(call.key)}
        >
          <Icon name="phone-off" />
          {t("decline")}
        </button>
      </div>
    </div>
  );
}

function InCallView({ call }: { call: CallView }) {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const speaking = state.speaking.remote && !call.held && !call.heldByPeer;
  return (
    <div className="call-card call-card--active">
      <div className="call-card__peer">
        <Avatar name={call.peerName} seed={call.peerUsername} size="lg" speaking={speaking} />
        <div className="call-card__text">
          <p className="call-card__title">
            <span data-testid="call-peer">{call.peerName}</span>
            {speaking ? <span className="speaking-tag">{t("speaking")}</span> : null}
            {call.held ? <span className="held-tag">{t("onHold")}</span> : null}
          </p>
          <p className="call-card__meta">
            <CallTimer since={call.activeSince ?? Date.now()} />
            <QualityIndicator quality={state.quality} />
          </p>
          {call.heldByPeer ? <p className="call-card__note">{t("heldByPeer", { name: call.peerName })}</p> : null}
          {call.peerMuted ? <p className="call-card__note">{t("peerMuted", { name: call.peerName })}</p> : null}
          {call.mediaError ? (
            <p className="call-card__warning" role="alert">
              {t("mediaFailed")}
            </p>
          ) : null}
          {state.micMuted ? <p className="call-card__warning">{t("micMutedNotice")}</p> : null}
        </div>
      </div>
      {call.conference ? <ParticipantList call={call} /> : null}
      <div className="call-card__actions">
        <button
          type="button"
          className="btn btn--toggle"
          aria-pressed={call.held}
          onClick={() => void store.setHeld(!call.held, call.key).catch(() => {})}
        >
          {t("hold")}
        </button>
        {!call.held ? <AddParticipant call={call} /> : null}
        <button
          type="button"
          className="btn btn--hangup"
          disabled={call.busy}
          onClick={() => void store.hangup(call.key)}
        >
          <Icon name="phone-off" />
          {t("hangUp")}
        </button>
      </div>
      <AudioSettings />
    </div>
  );
}

/** The other people invited to a group call, besides the one calling. */
function groupNames(call: CallView): string {
  return call.participants
    .filter((p) => p.username !== call.peerUsername && p.state !== "left")
    .map((p) => p.displayName)
    .join(", ");
}

/** A call on hold behind the one in front. */
function HeldCallRow({ call }: { call: CallView }) {
  const { t } = useI18n();
  const store = useStore();
  return (
    <div className="held-call" data-testid="held-call">
      <Avatar name={call.peerName} seed={call.peerUsername} size="sm" />
      <span className="held-call__name">{call.peerName}</span>
      <span className="held-tag">{t("onHold")}</span>
      {call.activeSince !== undefined ? <CallTimer since={call.activeSince} plain /> : null}
      <span className="held-call__actions">
        <button
          type="button"
          className="btn btn--small btn--ghost-light"
          aria-label={t("resumeName", { name: call.peerName })}
          onClick={() => void store.setHeld(false, call.key).catch(() => {})}
        >
          {t("resumeShort")}
        </button>
        <button
          type="button"
          className="btn btn--small btn--hangup-small"
          aria-label={t("hangUpName", { name: call.peerName })}
          disabled={call.busy}
          onClick={() => void store.hangup(call.key)}
        >
          <Icon name="phone-off" />
        </button>
      </span>
    </div>
  );
}

function QualityIndicator({ quality }: { quality: CallQuality }) {
  const { t, language } = useI18n();
  const level = quality.level;
  const levelText = level
    ? t(level === "good" ? "qualityGood" : level === "fair" ? "qualityFair" : "qualityPoor")
    : t("qualityMeasuring");
  const number = (value: number | undefined, digits: number, unit: string) =>
    value === undefined
      ? t("notAvailable")
      : `${new Intl.NumberFormat(language, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value)} ${unit}`;
  return (
    <span className={`quality quality--${level ?? "unknown"}`} data-testid="call-quality" data-level={level ?? ""}>
      <span className="quality__bars" aria-hidden="true">
        <span />
        <span />
        <span />
      </span>
      <span className="quality__label">{t("quality", { level: levelText })}</span>
      <span className="quality__details">
        {t("qualityDetails", {
          rtt: number(quality.rttMs, 0, "ms"),
          loss: number(quality.lossPercent, 1, "%"),
          jitter: number(quality.jitterMs, 0, "ms"),
        })}
      </span>
    </span>
  );
}
