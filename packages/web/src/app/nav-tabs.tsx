import { type KeyboardEvent, useRef } from "react";
import { type MessageKey, plural, useI18n } from "../i18n.js";
import type { Page } from "../state/store.js";
import { useSoftphone, useStore } from "../state/store-context.js";

const PAGES: { page: Page; label: MessageKey }[] = [
  { page: "contacts", label: "tabContacts" },
  { page: "history", label: "tabHistory" },
  { page: "account", label: "tabAccount" },
];

export const tabId = (page: Page) => `tab-${page}`;
export const panelId = (page: Page) => `panel-${page}`;

/** Tabs with roving focus: arrow keys, Home and End move between them (WAI-ARIA tabs pattern). */
export function NavTabs() {
  const { t, language } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  const missed = state.history.missedCount;

  const onKeyDown = (event: KeyboardEvent, index: number) => {
    let next = index;
    if (event.key === "ArrowRight") next = (index + 1) % PAGES.length;
    else if (event.key === "ArrowLeft") next = (index - 1 + PAGES.length) % PAGES.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = PAGES.length - 1;
    else return;
    event.preventDefault();
    const target = PAGES[next];
    if (!target) return;
    store.setPage(target.page);
    refs.current[next]?.focus();
  };

  return (
    <nav className="tabs-bar" aria-label={t("mainNavigation")}>
      <div className="tabs" role="tablist" aria-label={t("mainNavigation")}>
        {PAGES.map(({ page, label }, index) => {
          const selected = state.page === page;
          const badge = page === "history" && missed > 0;
          return (
            <button
              key={page}
              ref={(el) => {
                refs.current[index] = el;
              }}
              type="button"
              role="tab"
              id={tabId(page)}
              aria-controls={panelId(page)}
              aria-selected={selected}
              tabIndex={selected ? 0 : -1}
              className="tab"
              aria-label={
                badge
                  ? t(plural(language, missed, "historyMissedOne", "historyMissedOther"), { count: missed })
                  : undefined
              }
              onClick={() => store.setPage(page)}
              onKeyDown={(e) => onKeyDown(e, index)}
            >
              {t(label)}
              {badge ? (
                <span className="badge" data-testid="missed-badge" aria-hidden="true">
                  {missed}
                </span>
              ) : null}
            </button>
          );
        })}
      </div>
    </nav>
  );
}
