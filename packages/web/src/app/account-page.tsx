import { type FormEvent, useCallback, useEffect, useId, useState } from "react";
import { useI18n } from "../i18n.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { FormMessage, useAction } from "./ui.js";

interface DeviceSession {
  id: number;
  deviceName: string;
  lastSeenAt: string;
  current: boolean;
  online: boolean;
}

export function AccountPage() {
  const { t } = useI18n();
  const headingId = useId();
  return (
    <div className="account">
      <h2 className="visually-hidden" id={headingId}>
        {t("account")}
      </h2>
      <ProfileSection />
      <PasswordSection />
      <DevicesSection />
      <DeleteSection />
    </div>
  );
}

function ProfileSection() {
  const { t } = useI18n();
  const store = useStore();
  const { self } = useSoftphone();
  const headingId = useId();
  const ids = { displayName: useId(), username: useId(), usernameHint: useId() };
  const [displayName, setDisplayName] = useState(self?.displayName ?? "");
  const [username, setUsername] = useState(self?.username ?? "");
  const nameAction = useAction();
  const usernameAction = useAction();
  // Follow changes made on another device.
  const currentName = self?.displayName;
  const currentUsername = self?.username;
  useEffect(() => {
    if (currentName !== undefined) setDisplayName(currentName);
  }, [currentName]);
  useEffect(() => {
    if (currentUsername !== undefined) setUsername(currentUsername);
  }, [currentUsername]);

  const saveName = (event: FormEvent) => {
    event.preventDefault();
    const value = displayName.trim();
    if (!value || value.length > 64) {
      nameAction.fail(t("errBadDisplayName"));
      return;
    }
    void nameAction.run(() => store.setDisplayName(value), "displayNameSaved");
  };

  const saveUsername = (event: FormEvent) => {
    event.preventDefault();
    void usernameAction.run(() => store.setUsername(username.trim().toLowerCase()), "usernameSaved");
  };

  return (
    <section className="card" aria-labelledby={headingId}>
      <h2 id={headingId}>{t("profile")}</h2>
      <form className="form" onSubmit={saveName}>
        <div className="field">
          <label htmlFor={ids.displayName}>{t("displayName")}</label>
          <div className="field__inline">
            <input
              id={ids.displayName}
              value={displayName}
              maxLength={64}
              onChange={(e) => setDisplayName(e.target.value)}
              autoComplete="nickname"
            />
            <button type="submit" className="btn btn--primary" disabled={nameAction.pending}>
              {t("saveDisplayName")}
            </button>
          </div>
        </div>
        <FormMessage action={nameAction} />
      </form>
      <form className="form" onSubmit={saveUsername}>
        <div className="field">
          <label htmlFor={ids.username}>{t("username")}</label>
          <div className="field__inline">
            <input
              id={ids.username}
              value={username}
              maxLength={32}
              onChange={(e) => setUsername(e.target.value)}
              autoComplete="username"
              autoCapitalize="none"
              spellCheck={false}
              aria-describedby={ids.usernameHint}
            />
            <button type="submit" className="btn btn--primary" disabled={usernameAction.pending}>
              {t("saveUsername")}
            </button>
          </div>
          <p className="hint" id={ids.usernameHint}>
            {t("usernameHint")}
          </p>
        </div>
        <FormMessage action={usernameAction} />
      </form>
    </section>
  );
}

function PasswordSection() {
  const { t } = useI18n();
  const store = useStore();
  const headingId = useId();
  const ids = { old: useId(), next: useId(), hint: useId() };
  const [oldPassword, setOldPassword] = useState("");
  const [newPassword, setNewPassword] = useState("");
  const action = useAction();

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    const ok = await action.run(() => store.changePassword(oldPassword, newPassword), "passwordChanged");
    if (ok) {
      setOldPassword("");
      setNewPassword("");
    }
  };

  return (
    <section className="card" aria-labelledby={headingId}>
      <h2 id={headingId}>{t("changePassword")}</h2>
      <form className="form" onSubmit={(e) => void onSubmit(e)} aria-labelledby={headingId}>
        <div className="form__row">
          <div className="field">
            <label htmlFor={ids.old}>{t("currentPassword")}</label>
            <input
              id={ids.old}
              type="password"
              value={oldPassword}
              onChange={(e) => setOldPassword(e.target.value)}
              autoComplete="current-password"
            />
          </div>
          <div className="field">
            <label htmlFor={ids.next}>{t("newPassword")}</label>
            <input
              id={ids.next}
              type="password"
              value={newPassword}
              onChange={(e) => setNewPassword(e.target.value)}
              autoComplete="new-password"
              aria-describedby={ids.hint}
            />
            <p className="hint" id={ids.hint}>
              {t("passwordHint")}
            </p>
          </div>
        </div>
        <FormMessage action={action} />
        <div className="form__actions">
          <button type="submit" className="btn btn--primary" disabled={action.pending || !oldPassword || !newPassword}>
            {t("changePassword")}
          </button>
        </div>
      </form>
    </section>
  );
}

function DevicesSection() {
  const { t, language } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const headingId = useId();
  const [sessions, setSessions] = useState<DeviceSession[] | undefined>(undefined);
  const logoutAction = useAction();
  const connected = state.connection === "connected";

  const load = useCallback(() => {
    store.sessions().then(setSessions, () => setSessions(undefined));
  }, [store]);
  useEffect(() => {
    if (connected) load();
  }, [connected, load]);

  return (
    <section className="card" aria-labelledby={headingId}>
      <h2 id={headingId}>{t("sessions")}</h2>
      {sessions && sessions.length > 0 ? (
        <>
          <h3 className="subheading">{t("devices")}</h3>
          <ul className="device-list">
            {sessions.map((s) => (
              <li key={s.id} className="device">
                <span className={`device__dot${s.online ? " is-online" : ""}`} aria-hidden="true" />
                <span className="device__name">{s.deviceName}</span>
                <span className="muted small">
                  {s.current ? t("thisDevice") : s.online ? t("online") : ""}
                  {!s.current && !s.online
                    ? t("lastSeen", {
                        time: new Date(s.lastSeenAt).toLocaleString(language, {
                          dateStyle: "medium",
                          timeStyle: "short",
                        }),
                      })
                    : ""}
                </span>
              </li>
            ))}
          </ul>
        </>
      ) : null}
      <div className="form__actions">
        <button
          type="button"
          className="btn"
          disabled={logoutAction.pending}
          onClick={() => void logoutAction.run(() => store.logout(false))}
        >
          {t("logOut")}
        </button>
        <button
          type="button"
          className="btn btn--danger-outline"
          disabled={logoutAction.pending || !connected}
          onClick={() => void logoutAction.run(() => store.logout(true))}
        >
          {t("logOutEverywhere")}
        </button>
      </div>
      <p className="hint">{t("logOutEverywhereHint")}</p>
      <FormMessage action={logoutAction} />
    </section>
  );
}

function DeleteSection() {
  const { t } = useI18n();
  const store = useStore();
  const headingId = useId();
  const ids = { password: useId(), hint: useId() };
  const [password, setPassword] = useState("");
  const action = useAction();

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    if (!password) {
      action.fail(t("deleteNeedsPassword"));
      return;
    }
    void action.run(() => store.deleteAccount(password));
  };

  return (
    <section className="card card--danger" aria-labelledby={headingId}>
      <h2 id={headingId}>{t("dangerZone")}</h2>
      <form className="form" onSubmit={onSubmit} aria-labelledby={headingId}>
        <p className="hint" id={ids.hint}>
          {t("deleteAccountHint")}
        </p>
        <div className="field">
          <label htmlFor={ids.password}>{t("yourPassword")}</label>
          <div className="field__inline">
            <input
              id={ids.password}
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              autoComplete="current-password"
              aria-describedby={ids.hint}
            />
            <button type="submit" className="btn btn--danger" disabled={action.pending}>
              {t("deleteAccount")}
            </button>
          </div>
        </div>
        <FormMessage action={action} />
      </form>
    </section>
  );
}
