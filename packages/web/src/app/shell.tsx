import { plural, useI18n } from "../i18n.js";
import { isInsecureContext } from "../media/secure-context.js";
import type { Page } from "../state/store.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { AccountPage } from "./account-page.js";
import { AppHeader } from "./app-header.js";
import { CallArea } from "./call-area.js";
import { ContactsPage } from "./contacts-page.js";
import { HistoryPage } from "./history-page.js";
import { InsecureContextNotice } from "./insecure-context-notice.js";
import { NavTabs, panelId, tabId } from "./nav-tabs.js";

/** The signed-in layout: header, tabs, the call panel above the open page. */
export function Shell() {
  const { t, language } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const page: Page = state.page;
  const missed = state.history.missedCount;

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        {t("skipToContent")}
      </a>
      <AppHeader />
      <NavTabs />
      {state.kicked ? (
        <p className="banner banner--warning" role="alert">
          {t("kicked")}
        </p>
      ) : null}
      {isInsecureContext() ? (
        <InsecureContextNotice />
      ) : state.micError ? (
        <p className="banner banner--warning" role="alert">
          {t("micUnavailable")}
        </p>
      ) : null}
      <main className="main" id="main" tabIndex={-1}>
        <CallArea />
        {missed > 0 && page !== "history" ? (
          <div className="missed-notice">
            <span className="missed-notice__dot" aria-hidden="true" />
            <span>{t(plural(language, missed, "missedBadgeOne", "missedBadgeOther"), { count: missed })}</span>
            <button type="button" className="btn btn--small btn--ghost" onClick={() => store.setPage("history")}>
              {t("showHistory")}
            </button>
          </div>
        ) : null}
        <div className="page" role="tabpanel" id={panelId(page)} aria-labelledby={tabId(page)}>
          {page === "contacts" ? <ContactsPage /> : page === "history" ? <HistoryPage /> : <AccountPage />}
        </div>
      </main>
    </div>
  );
}
