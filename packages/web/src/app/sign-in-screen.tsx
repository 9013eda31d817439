import { type FormEvent, useId, useState } from "react";
import { type MessageKey, useI18n } from "../i18n.js";
import type { SignedOutReason } from "../state/store.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { InsecureContextNotice } from "./insecure-context-notice.js";
import { LanguageSelect } from "./language-select.js";
import { errorText } from "./ui.js";

const SIGNED_OUT: Record<SignedOutReason, MessageKey> = {
  normal: "signedOutNormal",
  revoked: "signedOutRevoked",
  expired: "signedOutExpired",
  disabled: "signedOutDisabled",
  deleted: "signedOutDeleted",
};

type Mode = "signIn" | "register";

/** Sign in or register; the server address is editable and remembered. */
export function SignInScreen() {
  const { t } = useI18n();
  const store = useStore();
  const state = useSoftphone();
  const [server, setServer] = useState(state.serverUrl);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [pending, setPending] = useState<Mode | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const ids = { server: useId(), username: useId(), password: useId(), displayName: useId(), hint: useId() };

  const submit = async (mode: Mode) => {
    if (pending) return;
    if (!username.trim() || !password) {
      setError(t(mode === "register" ? "registerNeedsFields" : "signInNeedsFields"));
      return;
    }
    setPending(mode);
    setError(undefined);
    try {
      if (mode === "register") await store.register(server.trim(), username, password, displayName);
      else await store.signIn(server.trim(), username, password);
    } catch (e) {
      setError(e);
      setPending(undefined);
    }
  };

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    void submit("signIn");
  };

  const shownError = error ?? state.resumeError;
  const notice =
    state.signedOutReason && state.signedOutReason !== "normal" ? t(SIGNED_OUT[state.signedOutReason]) : "";

  return (
    <div className="auth">
      <main className="auth__card" id="main">
        <div className="brand brand--large">
          <span className="brand__mark" aria-hidden="true">
            P
          </span>
          <div>
            <h1 className="brand__name">{t("signInTitle")}</h1>
            <p className="muted">{t("tagline")}</p>
          </div>
        </div>
        <p className="muted">{t("signInIntro")}</p>
        <InsecureContextNotice />
        {notice ? (
          <p className="banner banner--info" role="status">
            {notice}
          </p>
        ) : null}
        <form className="form" onSubmit={onSubmit} aria-label={t("signInTitle")} noValidate>
          <div className="field">
            <label htmlFor={ids.server}>{t("serverAddress")}</label>
            <input
              id={ids.server}
              type="url"
              inputMode="url"
              value={server}
              onChange={(e) => setServer(e.target.value)}
              autoComplete="url"
              spellCheck={false}
              required
            />
          </div>
          <div className="field">
            <label htmlFor={ids.username}>{t("username")}</label>
            <input
              id={ids.username}
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              autoComplete="username"
              autoCapitalize="none"
              spellCheck={false}
              required
            />
          </div>
          <div className="field">
            <label htmlFor={ids.password}>{t("password")}</label>
            <input
              id={ids.password}
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              autoComplete="current-password"
              required
            />
          </div>
          <div className="field">
            <label htmlFor={ids.displayName}>{t("displayNameOptional")}</label>
            <input
              id={ids.displayName}
              value={displayName}
              onChange={(e) => setDisplayName(e.target.value)}
              autoComplete="nickname"
              aria-describedby={ids.hint}
            />
            <p className="hint" id={ids.hint}>
              {t("signUpHint")}
            </p>
          </div>
          {shownError !== undefined ? (
            <p className="form-message form-message--error" role="alert">
              {typeof shownError === "string" ? shownError : errorText(t, shownError)}
            </p>
          ) : null}
          <div className="form__actions">
            <button type="submit" className="btn btn--primary" disabled={pending !== undefined}>
              {pending === "signIn" ? t("signingIn") : t("signIn")}
            </button>
            <button
              type="button"
              className="btn"
              disabled={pending !== undefined}
              onClick={() => void submit("register")}
            >
              {pending === "register" ? t("registering") : t("register")}
            </button>
            {state.resumeError !== undefined && error === undefined ? (
              <button type="button" className="btn btn--ghost" onClick={() => void store.retryResume()}>
                {t("tryAgain")}
              </button>
            ) : null}
          </div>
        </form>
        <div className="auth__footer">
          <LanguageSelect />
        </div>
      </main>
    </div>
  );
}
