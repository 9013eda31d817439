import type { DirectoryUser, PhonebookEntry } from "@parley/protocol";
import { type FormEvent, useId, useState } from "react";
import { useI18n } from "../i18n.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { CallButton, matches } from "./call-button.js";
import { Avatar, FormMessage, Icon, PresenceBadge, useAction } from "./ui.js";

/** The personal phone book: favourites first, then by label. */
export function PhonebookSection({ query, usersById }: { query: string; usersById: Map<number, DirectoryUser> }) {
  const { t } = useI18n();
  const state = useSoftphone();
  const headingId = useId();
  const rowAction = useAction();
  const entries = [...state.phonebook]
    .sort(
      (a, b) =>
        Number(b.favourite) - Number(a.favourite) || (a.label || a.displayName).localeCompare(b.label || b.displayName),
    )
    .filter((e) => matches(query, e.label, e.displayName, e.username, e.notes));

  return (
    <section className="card" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>{t("phonebook")}</h2>
      </div>
      {state.phonebook.length === 0 ? (
        <p className="empty">{t("phonebookEmpty")}</p>
      ) : entries.length === 0 ? (
        <p className="empty">{t("noMatches", { query })}</p>
      ) : (
        <ul className="contact-list" aria-labelledby={headingId}>
          {entries.map((entry) => (
            <PhonebookRow key={entry.id} entry={entry} user={usersById.get(entry.userId)} rowAction={rowAction} />
          ))}
        </ul>
      )}
      <FormMessage action={rowAction} />
      <AddEntryForm users={[...usersById.values()]} />
    </section>
  );
}

function PhonebookRow({
  entry,
  user,
  rowAction,
}: {
  entry: PhonebookEntry;
  user: DirectoryUser | undefined;
  rowAction: ReturnType<typeof useAction>;
}) {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const [editing, setEditing] = useState(false);
  const status = user?.status ?? "offline";
  const name = entry.displayName;
  const offline = state.connection !== "connected";

  if (editing) return <EditEntryForm entry={entry} onDone={() => setEditing(false)} />;

  return (
    <li
      className={`contact${entry.favourite ? " contact--favourite" : ""}`}
      data-status={status}
      data-entry-id={entry.id}
    >
      <Avatar name={entry.label || name} seed={entry.username} status={status} />
      <div className="contact__main">
        <span className="contact__name">{entry.label || name}</span>
        <span className="contact__sub">
          {entry.label ? `${name} · ` : ""}@{entry.username}
        </span>
        {entry.notes ? <span className="contact__notes">{entry.notes}</span> : null}
      </div>
      <PresenceBadge status={status} />
      <div className="contact__actions">
        <button
          type="button"
          className={`btn btn--icon btn--star${entry.favourite ? " is-on" : ""}`}
          aria-pressed={entry.favourite}
          aria-label={t("favouriteName", { name })}
          title={t("favourite")}
          disabled={offline}
          onClick={() =>
            void rowAction.run(() => store.updatePhonebookEntry({ id: entry.id, favourite: !entry.favourite }))
          }
        >
          <Icon name="star" />
        </button>
        <button
          type="button"
          className="btn btn--icon"
          aria-label={t("editName", { name })}
          title={t("editName", { name })}
          disabled={offline}
          onClick={() => setEditing(true)}
        >
          <Icon name="edit" />
        </button>
        <button
          type="button"
          className="btn btn--icon btn--danger-ghost"
          aria-label={t("removeName", { name })}
          title={t("removeName", { name })}
          disabled={offline}
          onClick={() => void rowAction.run(() => store.removePhonebookEntry(entry.id), "entryRemoved", { name })}
        >
          <Icon name="trash" />
        </button>
        <CallButton user={user} displayName={name} />
      </div>
    </li>
  );
}

function EditEntryForm({ entry, onDone }: { entry: PhonebookEntry; onDone(): void }) {
  const { t } = useI18n();
  const store = useStore();
  const action = useAction();
  const [label, setLabel] = useState(entry.label);
  const [notes, setNotes] = useState(entry.notes);
  const [favourite, setFavourite] = useState(entry.favourite);
  const ids = { label: useId(), notes: useId(), favourite: useId() };
  const title = t("editEntryTitle", { name: entry.displayName });

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    const ok = await action.run(() =>
      store.updatePhonebookEntry({ id: entry.id, label: label.trim(), notes, favourite }),
    );
    if (ok) onDone();
  };

  return (
    <li className="contact contact--editing" data-entry-id={entry.id}>
      <form className="form form--inline" aria-label={title} onSubmit={(e) => void onSubmit(e)}>
        <p className="form__title">{title}</p>
        <div className="form__row">
          <div className="field">
            <label htmlFor={ids.label}>{t("label")}</label>
            <input id={ids.label} value={label} maxLength={64} onChange={(e) => setLabel(e.target.value)} />
          </div>
          <div className="field field--check">
            <input
              id={ids.favourite}
              type="checkbox"
              checked={favourite}
              onChange={(e) => setFavourite(e.target.checked)}
            />
            <label htmlFor={ids.favourite}>{t("favourite")}</label>
          </div>
        </div>
        <div className="field">
          <label htmlFor={ids.notes}>{t("notes")}</label>
          <textarea id={ids.notes} value={notes} maxLength={1000} rows={2} onChange={(e) => setNotes(e.target.value)} />
        </div>
        <FormMessage action={action} />
        <div className="form__actions">
          <button type="submit" className="btn btn--primary" disabled={action.pending}>
            {t("save")}
          </button>
          <button type="button" className="btn" onClick={onDone}>
            {t("cancel")}
          </button>
        </div>
      </form>
    </li>
  );
}

function AddEntryForm({ users }: { users: DirectoryUser[] }) {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const action = useAction();
  const [username, setUsername] = useState("");
  const [label, setLabel] = useState("");
  const [notes, setNotes] = useState("");
  const [favourite, setFavourite] = useState(false);
  const ids = { username: useId(), label: useId(), notes: useId(), favourite: useId(), list: useId() };

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    const wanted = username.trim().toLowerCase();
    if (!wanted) return;
    const ok = await action.run(
      () => store.addToPhonebook({ username: wanted, label: label.trim(), notes, favourite }),
      "entryAdded",
      { name: users.find((u) => u.username === wanted)?.displayName ?? wanted },
    );
    if (ok) {
      setUsername("");
      setLabel("");
      setNotes("");
      setFavourite(false);
    }
  };

  return (
    <form className="form add-entry" aria-label={t("addEntry")} onSubmit={(e) => void onSubmit(e)}>
      <p className="form__title">{t("addEntryTitle")}</p>
      <div className="add-entry__row">
        <div className="field">
          <label htmlFor={ids.username}>{t("username")}</label>
          <input
            id={ids.username}
            value={username}
            list={ids.list}
            onChange={(e) => setUsername(e.target.value)}
            autoComplete="off"
            autoCapitalize="none"
            spellCheck={false}
            required
          />
          <datalist id={ids.list}>
            {users.map((u) => (
              <option key={u.id} value={u.username}>
                {u.displayName}
              </option>
            ))}
          </datalist>
        </div>
        <div className="field">
          <label htmlFor={ids.label}>{t("label")}</label>
          <input id={ids.label} value={label} maxLength={64} onChange={(e) => setLabel(e.target.value)} />
        </div>
        <div className="field add-entry__notes">
          <label htmlFor={ids.notes}>{t("notes")}</label>
          <input id={ids.notes} value={notes} maxLength={1000} onChange={(e) => setNotes(e.target.value)} />
        </div>
        <div className="field field--check">
          <input
            id={ids.favourite}
            type="checkbox"
            checked={favourite}
            onChange={(e) => setFavourite(e.target.checked)}
          />
          <label htmlFor={ids.favourite}>{t("favourite")}</label>
        </div>
        <button
          type="submit"
          className="btn btn--primary"
          disabled={action.pending || !username.trim() || state.connection !== "connected"}
        >
          <Icon name="plus" />
          {t("addEntry")}
        </button>
      </div>
      <FormMessage action={action} />
    </form>
  );
}
