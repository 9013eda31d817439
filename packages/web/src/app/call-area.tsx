import { type ReactNode, useEffect, useId, useRef } from "react";
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
          <CallAction look="small" onClick={() => store.calls.dismissEndNotice()}>
            {t("dismiss")}
          </CallAction>
        ) : null}
      </div>
    </>
  );
}

const CALL_ACTION_CLASSES = {
  answer: "btn btn--answer",
  hangup: "btn btn--hangup",
  toggle: "btn btn--toggle",
  small: "btn btn--small btn--ghost-light",
  "small-hangup": "btn btn--small btn--hangup-small",
} as const;

/**
 * A button of the call area: its look, an optional leading icon, and its text. `label` sets the
 * accessible name when the text alone is not enough (held-call rows; icon-only buttons); `pressed`
 * makes it a toggle (`aria-pressed`).
 */
function CallAction({
  look,
  icon,
  label,
  pressed,
  disabled,
  onClick,
  children,
}: {
  look: keyof typeof CALL_ACTION_CLASSES;
  icon?: "phone" | "phone-off";
  label?: string;
  pressed?: boolean;
  disabled?: boolean;
  onClick: () => void;
  children?: ReactNode;
}) {
  return (
    <button
      type="button"
      className={CALL_ACTION_CLASSES[look]}
      aria-label={label}
      aria-pressed={pressed}
      disabled={disabled}
      onClick={onClick}
    >
      {icon ? <Icon name={icon} /> : null}
      {children}
    </button>
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
        <CallAction
          look="hangup"
          icon="phone-off"
          disabled={call.busy}
          onClick={() => void store.calls.hangup(call.key)}
        >
          {t("cancel")}
        </CallAction>
      </div>
    </div>
  );
}

function IncomingCallDialog({ call, waitingBehind }: { call: CallView; waitingBehind?: string }) {
  const { t } = useI18n();
  const store = useStore();
  const ref = useRef<HTMLDivElement>(null);
  const textId = useId();
  const hintId = useId();

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
      // A waiting call is named as such, and its description says which call answering holds.
      aria-label={waitingBehind ? t("callWaiting") : t("incomingCall")}
      aria-describedby={waitingBehind ? `${textId} ${hintId}` : textId}
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
            {waitingBehind ? (
              <>
                {" · "}
                <span id={hintId}>{t("waitingHint", { name: waitingBehind })}</span>
              </>
            ) : null}
          </p>
        </div>
      </div>
      <div className="call-card__actions">
        <CallAction look="answer" icon="phone" disabled={call.busy} onClick={() => void store.calls.answer(call.key)}>
          {t("answer")}
        </CallAction>
        <CallAction
          look="hangup"
          icon="phone-off"
          disabled={call.busy}
          onClick={() => void store.calls.decline(call.key)}
        >
          {t("decline")}
        </CallAction>
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
        <Avatar
          name={call.conference ? t("groupCall") : call.peerName}
          seed={call.conference ? "conference" : call.peerUsername}
          size="lg"
          speaking={speaking}
        />
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
          {/* Always present, so screen readers announce the notes as they come and go. */}
          <div role="status" className="call-card__notes">
            {call.heldByPeer ? <p className="call-card__note">{t("heldByPeer", { name: call.peerName })}</p> : null}
            {call.peerMuted ? <p className="call-card__note">{t("peerMuted", { name: call.peerName })}</p> : null}
            {call.peerReconnecting ? (
              <p className="call-card__note" data-testid="peer-reconnecting">
                {t("peerReconnecting", { name: call.peerName })}
              </p>
            ) : null}
          </div>
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
        <CallAction
          look="toggle"
          pressed={call.held}
          onClick={() => void store.calls.setHeld(!call.held, call.key).catch(() => {})}
        >
          {t("hold")}
        </CallAction>
        {!call.held ? <AddParticipant call={call} /> : null}
        <CallAction
          look="hangup"
          icon="phone-off"
          disabled={call.busy}
          onClick={() => void store.calls.hangup(call.key)}
        >
          {t("hangUp")}
        </CallAction>
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
  const { canResume } = useSoftphone();
  return (
    <div className="held-call" data-testid="held-call">
      <Avatar name={call.peerName} seed={call.peerUsername} size="sm" />
      <span className="held-call__name">{call.peerName}</span>
      <span className="held-tag">{t("onHold")}</span>
      {call.activeSince !== undefined ? <CallTimer since={call.activeSince} plain /> : null}
      <span className="held-call__actions">
        <CallAction
          look="small"
          label={t("resumeName", { name: call.peerName })}
          disabled={!canResume}
          onClick={() => void store.calls.setHeld(false, call.key).catch(() => {})}
        >
          {t("resumeShort")}
        </CallAction>
        <CallAction
          look="small-hangup"
          icon="phone-off"
          label={t("hangUpName", { name: call.peerName })}
          disabled={call.busy}
          onClick={() => void store.calls.hangup(call.key)}
        />
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
    <span
      className={`quality quality--${level ?? "unknown"}`}
      data-testid="call-quality"
      data-level={level ?? ""}
      data-path={quality.path?.kind ?? ""}
    >
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
        {quality.path?.kind === "turn"
          ? ` · ${t("qualityRelayed", { protocol: quality.path.protocol.toUpperCase() })}`
          : ""}
      </span>
    </span>
  );
}
