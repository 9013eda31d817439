import type { CallParticipant } from "@parley/protocol";
import { useId, useState } from "react";
import { type MessageKey, useI18n } from "../i18n.js";
import type { CallView } from "../state/store.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { Avatar, FormMessage, useAction } from "./ui.js";

const STATE_TEXT: Record<CallParticipant["state"], MessageKey> = {
  calling: "participantConnected",
  connected: "participantConnected",
  ringing: "participantRinging",
  left: "participantLeft",
};

/**
 * Who else is in a call, live: joined, ringing or left, and who speaks (from the server's audio
 * levels), is muted or holds the call. Shown for conferences; each row is a list item named by
 * the person, with `data-username`, `data-state` and `data-speaking` for tests.
 */
export function ParticipantList({ call }: { call: CallView }) {
  const { t } = useI18n();
  const headingId = useId();
  const present = call.participants.filter((p) => p.state !== "left").length + 1;
  return (
    <div className="participants">
      <p className="participants__heading" id={headingId}>
        {t("participantsCount", { count: present, max: call.maxParticipants })}
      </p>
      <ul className="participants__list" aria-labelledby={headingId}>
        {call.participants.map((p) => {
          const speaking = p.speaking && p.state === "connected" && !p.held && !call.held;
          return (
            <li
              key={p.userId}
              className={`participant participant--${p.state}`}
              data-testid="participant"
              data-username={p.username}
              data-state={p.state}
              data-speaking={speaking ? "true" : "false"}
            >
              <Avatar name={p.displayName} seed={p.username} size="sm" speaking={speaking} />
              <span className="participant__name">{p.displayName}</span>
              <span className="participant__state">{t(STATE_TEXT[p.state])}</span>
              {speaking ? <span className="speaking-tag">{t("speaking")}</span> : null}
              {p.muted && p.state === "connected" ? <span className="tag">{t("participantMuted")}</span> : null}
              {p.held && p.state === "connected" ? <span className="held-tag">{t("onHold")}</span> : null}
            </li>
          );
        })}
      </ul>
    </div>
  );
}

/**
 * "Add participant": picks someone online who is not in the call yet and invites them (the call
 * becomes a conference). The server's refusal (full, busy, offline) is shown as an alert.
 */
export function AddParticipant({ call }: { call: CallView }) {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const action = useAction();
  const [open, setOpen] = useState(false);
  const [choice, setChoice] = useState("");
  const selectId = useId();
  const inCall = new Set(call.participants.filter((p) => p.state !== "left").map((p) => p.username));
  const candidates = state.directory.filter(
    (u) => u.status !== "offline" && u.id !== state.self?.id && !inCall.has(u.username),
  );
  const full = call.participants.filter((p) => p.state !== "left").length + 1 >= call.maxParticipants;
  return (
    <div className="add-participant">
      <button
        type="button"
        className="btn btn--toggle"
        aria-expanded={open}
        disabled={full && !open}
        onClick={() => setOpen(!open)}
      >
        {t("addParticipant")}
      </button>
      {open ? (
        <form
          className="add-participant__form"
          onSubmit={(event) => {
            event.preventDefault();
            const username = choice || candidates[0]?.username;
            if (!username) return;
            void action
              .run(() => store.calls.addParticipant(username))
              .then((ok) => {
                if (ok) {
                  setOpen(false);
                  setChoice("");
                }
              });
          }}
        >
          <label htmlFor={selectId}>{t("personToAdd")}</label>
          <select id={selectId} value={choice} onChange={(e) => setChoice(e.target.value)}>
            {candidates.length === 0 ? <option value="">{t("nobodyToAdd")}</option> : null}
            {candidates.map((u) => (
              <option key={u.id} value={u.username}>
                {u.displayName} (@{u.username})
              </option>
            ))}
          </select>
          <button type="submit" className="btn btn--small" disabled={action.pending || candidates.length === 0}>
            {t("invite")}
          </button>
        </form>
      ) : null}
      <FormMessage action={action} />
    </div>
  );
}

/** Contacts page: tick several people who are online and call them all at once (a group call). */
export function GroupCallSection() {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const headingId = useId();
  const [picked, setPicked] = useState<string[]>([]);
  const online = state.directory.filter((u) => u.status !== "offline" && u.id !== state.self?.id);
  const chosen = online.filter((u) => picked.includes(u.username));
  const disabled = chosen.length < 2 || !state.canCall || state.connection !== "connected";
  return (
    <section className="card group-call" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>{t("groupCall")}</h2>
        <span className="muted small">{t("groupCallHint")}</span>
      </div>
      {online.length < 2 ? (
        <p className="empty">{t("groupCallNobody")}</p>
      ) : (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            if (disabled) return;
            setPicked([]);
            void store.calls.placeGroupCall(chosen.map((u) => ({ username: u.username, displayName: u.displayName })));
          }}
        >
          <fieldset className="group-call__people">
            <legend className="visually-hidden">{t("groupCallPick")}</legend>
            {online.map((u) => (
              <label key={u.id} className="group-call__person">
                <input
                  type="checkbox"
                  checked={picked.includes(u.username)}
                  onChange={(e) =>
                    setPicked(e.target.checked ? [...picked, u.username] : picked.filter((name) => name !== u.username))
                  }
                />
                {u.displayName}
              </label>
            ))}
          </fieldset>
          <button type="submit" className="btn btn--call" disabled={disabled}>
            {t("startGroupCall", { count: chosen.length })}
          </button>
        </form>
      )}
    </section>
  );
}
