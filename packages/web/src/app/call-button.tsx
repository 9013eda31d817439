import type { DirectoryUser } from "@parley/protocol";
import { useI18n } from "../i18n.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { Icon } from "./ui.js";

export function matches(query: string, ...fields: string[]): boolean {
  const q = query.trim().toLocaleLowerCase();
  if (!q) return true;
  return fields.some((f) => f.toLocaleLowerCase().includes(q));
}

/** A call button named "Call <displayName>"; disabled for offline people and while in a call (unless it is on hold). */
export function CallButton({ user, displayName }: { user: DirectoryUser | undefined; displayName: string }) {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const disabled = !user || user.status === "offline" || !state.canCall || state.connection !== "connected";
  return (
    <button
      type="button"
      className="btn btn--call"
      aria-label={t("callName", { name: displayName })}
      disabled={disabled}
      onClick={() => user && void store.calls.placeCall(user.username, user.displayName)}
    >
      <Icon name="phone" />
      <span className="btn__text">{t("callVerb")}</span>
    </button>
  );
}
