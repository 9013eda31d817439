import type { PresenceStatus } from "@parley/protocol";
import { type CSSProperties, useCallback, useEffect, useRef, useState } from "react";
import { type MessageKey, useI18n, type Vars } from "../i18n.js";
import { describeError } from "../state/errors.js";
import { UnreachableError } from "../state/store.js";

export const PRESENCE_LABELS: Record<PresenceStatus, MessageKey> = {
  available: "statusAvailable",
  away: "statusAway",
  busy: "statusBusy",
  "in-call": "statusInCall",
  offline: "statusOffline",
};

/** Coloured dot and text: colour is never the only cue. */
export function PresenceBadge({ status }: { status: PresenceStatus }) {
  const { t } = useI18n();
  return (
    <span className={`presence presence--${status}`}>
      <span className="presence__dot" aria-hidden="true" />
      {t(PRESENCE_LABELS[status])}
    </span>
  );
}

const AVATAR_HUES = [210, 260, 330, 20, 160, 190, 290, 40];

export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? `${words[0]?.[0] ?? ""}${words[words.length - 1]?.[0] ?? ""}` : name.slice(0, 2);
  return letters.toUpperCase() || "?";
}

export function Avatar({
  name,
  seed,
  status,
  size = "md",
  speaking = false,
}: {
  name: string;
  seed: string;
  status?: PresenceStatus | undefined;
  size?: "sm" | "md" | "lg";
  speaking?: boolean;
}) {
  let hash = 0;
  for (const ch of seed) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const hue = AVATAR_HUES[hash % AVATAR_HUES.length];
  return (
    <span
      className={`avatar avatar--${size}${speaking ? " avatar--speaking" : ""}`}
      style={{ "--avatar-hue": hue } as CSSProperties}
      aria-hidden="true"
    >
      {initials(name)}
      {status ? <span className={`avatar__status presence--${status}`} /> : null}
    </span>
  );
}

export function errorText(t: ReturnType<typeof useI18n>["t"], error: unknown): string {
  if (error instanceof UnreachableError) return t("errUnreachable", { url: error.url });
  return describeError(t, error);
}

const SUCCESS_MS = 6000;

interface ActionState {
  pending: boolean;
  error: unknown;
  success: { key: MessageKey; vars?: Vars | undefined } | undefined;
}

/**
 * A form's request: pending flag, the error (translated at render time, so switching language
 * re-translates it) and a success message.
 */
export function useAction() {
  const [state, setState] = useState<ActionState>({ pending: false, error: undefined, success: undefined });
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  // Success messages fade after a few seconds; errors stay until the next attempt.
  const success = state.success;
  useEffect(() => {
    if (!success) return;
    const timer = setTimeout(() => {
      if (mounted.current) setState((s) => (s.success === success ? { ...s, success: undefined } : s));
    }, SUCCESS_MS);
    return () => clearTimeout(timer);
  }, [success]);
  const run = useCallback(
    async (action: () => Promise<unknown>, success?: MessageKey, vars?: Vars): Promise<boolean> => {
      setState({ pending: true, error: undefined, success: undefined });
      try {
        await action();
        if (mounted.current)
          setState({ pending: false, error: undefined, success: success ? { key: success, vars } : undefined });
        return true;
      } catch (error) {
        if (mounted.current) setState({ pending: false, error, success: undefined });
        return false;
      }
    },
    [],
  );
  const fail = useCallback((error: unknown) => setState({ pending: false, error, success: undefined }), []);
  const clear = useCallback(() => setState({ pending: false, error: undefined, success: undefined }), []);
  return { ...state, run, fail, clear };
}

/** The outcome of a form: an alert for errors, a polite status for success. */
export function FormMessage({ action }: { action: ReturnType<typeof useAction> }) {
  const { t } = useI18n();
  if (action.error !== undefined)
    return (
      <p className="form-message form-message--error" role="alert">
        {typeof action.error === "string" ? action.error : errorText(t, action.error)}
      </p>
    );
  return (
    <p className="form-message form-message--success" role="status">
      {action.success ? t(action.success.key, action.success.vars) : ""}
    </p>
  );
}

export function Icon({
  name,
}: {
  name: "phone" | "phone-off" | "plus" | "star" | "edit" | "trash" | "mic" | "speaker";
}) {
  const paths: Record<typeof name, string> = {
    phone:
      "M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z",
    "phone-off":
      "M12 9c-1.6 0-3.15.25-4.6.72v3.1a1 1 0 0 1-.56.9 11.5 11.5 0 0 0-2.66 1.85 1 1 0 0 1-1.41-.02L.29 13.08a1 1 0 0 1 0-1.41A16.9 16.9 0 0 1 12 7c4.57 0 8.72 1.8 11.71 4.67a1 1 0 0 1 0 1.41l-2.48 2.48a1 1 0 0 1-1.41.02 11.3 11.3 0 0 0-2.67-1.85 1 1 0 0 1-.56-.9v-3.1A15 15 0 0 0 12 9z",
    plus: "M11 5h2v6h6v2h-6v6h-2v-6H5v-2h6z",
    star: "M12 17.3l-6.2 3.7 1.6-7L2 9.2l7.2-.6L12 2l2.8 6.6 7.2.6-5.4 4.8 1.6 7z",
    edit: "M3 17.25V21h3.75L17.8 9.94l-3.75-3.75zM20.7 7.04a1 1 0 0 0 0-1.41l-2.33-2.34a1 1 0 0 0-1.41 0l-1.83 1.83 3.75 3.75z",
    trash: "M6 19a2 2 0 0 0 2 2h8a2 2 0 0 0 2-2V7H6zM19 4h-3.5l-1-1h-5l-1 1H5v2h14z",
    mic: "M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11z",
    speaker:
      "M3 9v6h4l5 5V4L7 9zm13.5 3A4.5 4.5 0 0 0 14 7.97v8.05A4.5 4.5 0 0 0 16.5 12zM14 3.23v2.06a7 7 0 0 1 0 13.42v2.06A9 9 0 0 0 14 3.23z",
  };
  return (
    <svg className="icon" viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">
      <path d={paths[name]} fill="currentColor" />
    </svg>
  );
}

export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(2, "0");
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
