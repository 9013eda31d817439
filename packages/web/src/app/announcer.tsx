import { useI18n } from "../i18n.js";
import { useSoftphone } from "../state/store-context.js";

/** Assertive live region: "Incoming call from …" interrupts whatever the screen reader says. */
export function Announcer() {
  const { t } = useI18n();
  const state = useSoftphone();
  const announcement = state.announcement;
  return (
    <div className="visually-hidden" aria-live="assertive" aria-atomic="true" data-testid="announcer">
      {announcement ? t("incomingAnnouncement", { name: announcement.name }) : ""}
    </div>
  );
}
