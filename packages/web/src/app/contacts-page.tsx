import type { DirectoryUser, PhonebookEntry } from "@parley/protocol";
import { useId, useMemo, useState } from "react";
import { useI18n } from "../i18n.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { CallButton, matches } from "./call-button.js";
import { GroupCallSection } from "./conference.js";
import { PhonebookSection } from "./phonebook-section.js";
import { Avatar, errorText, Icon, PresenceBadge, useAction } from "./ui.js";

export function ContactsPage() {
  const { t } = useI18n();
  const state = useSoftphone();
  const [query, setQuery] = useState("");
  const searchId = useId();
  const byId = useMemo(() => new Map(state.directory.map((u) => [u.id, u])), [state.directory]);

  return (
    <div className="contacts">
      <div className="search">
        <label htmlFor={searchId} className="search__label">
          {t("searchContacts")}
        </label>
        <input
          id={searchId}
          type="search"
          className="search__input"
          placeholder={t("searchPlaceholder")}
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          autoComplete="off"
          spellCheck={false}
        />
      </div>
      <div className="contacts__columns">
        <PhonebookSection query={query} usersById={byId} />
        <DirectorySection query={query} phonebook={state.phonebook} />
      </div>
      <GroupCallSection />
    </div>
  );
}

function DirectorySection({ query, phonebook }: { query: string; phonebook: PhonebookEntry[] }) {
  const { t } = useI18n();
  const state = useSoftphone();
  const headingId = useId();
  const users = state.directory.filter((u) => matches(query, u.displayName, u.username));
  const online = state.directory.filter((u) => u.status !== "offline").length;
  const listed = new Set(phonebook.map((e) => e.userId));
  return (
    <section className="card" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>{t("directory")}</h2>
        <span className="muted small">{t("onlineCount", { online, total: state.directory.length })}</span>
      </div>
      {users.length === 0 ? (
        <p className="empty">{state.directory.length === 0 ? t("directoryEmpty") : t("noMatches", { query })}</p>
      ) : (
        <ul className="contact-list" aria-labelledby={headingId}>
          {users.map((user) => (
            <DirectoryRow key={user.id} user={user} inPhonebook={listed.has(user.id)} />
          ))}
        </ul>
      )}
    </section>
  );
}

function DirectoryRow({ user, inPhonebook }: { user: DirectoryUser; inPhonebook: boolean }) {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const action = useAction();
  return (
    <li className="contact" data-status={user.status} data-username={user.username}>
      <Avatar name={user.displayName} seed={user.username} status={user.status} />
      <div className="contact__main">
        <span className="contact__name">{user.displayName}</span>
        <span className="contact__sub">@{user.username}</span>
      </div>
      <PresenceBadge status={user.status} />
      <div className="contact__actions">
        {inPhonebook ? (
          <span className="chip" title={t("inPhonebook")}>
            <Icon name="star" />
            <span className="visually-hidden">{t("inPhonebook")}</span>
          </span>
        ) : (
          <button
            type="button"
            className="btn btn--icon"
            aria-label={t("addToPhonebookName", { name: user.displayName })}
            title={t("addToPhonebookName", { name: user.displayName })}
            disabled={action.pending || state.connection !== "connected"}
            onClick={() => void action.run(() => store.addToPhonebook({ username: user.username }))}
          >
            <Icon name="plus" />
          </button>
        )}
        <CallButton user={user} displayName={user.displayName} />
      </div>
      {action.error !== undefined ? (
        <p className="form-message form-message--error contact__error" role="alert">
          {errorText(t, action.error)}
        </p>
      ) : null}
    </li>
  );
}
