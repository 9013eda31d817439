import { useEffect, useState } from "react";
import { useI18n } from "../i18n.js";
import { formatDuration } from "./ui.js";

/**
 * mm:ss since `since` (local clock), ticking every half second. The call in front's timer is the
 * page's one `role="timer"` ("Call duration"); `plain` ones (held calls) are just text.
 */
export function CallTimer({ since, plain = false }: { since: number; plain?: boolean }) {
  const { t } = useI18n();
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, []);
  if (plain) return <span className="call-timer call-timer--plain">{formatDuration(now - since)}</span>;
  return (
    <span className="call-timer" role="timer" aria-label={t("callDuration")}>
      {formatDuration(now - since)}
    </span>
  );
}
