import { type FormEvent, useCallback, useEffect, useId, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { ConnectionIndicator } from "../app/app-header.js";
import { LanguageSelect } from "../app/language-select.js";
import { errorText } from "../app/ui.js";
import { useI18n } from "../i18n.js";
import { useSoftphone, useStore } from "../state/store-context.js";
import { type AdminTranslate, useAdminI18n } from "./admin-i18n.js";
import type { Ask, Confirmation } from "./confirmation.js";
import { CallsPanel, ServerPanel, UsersPanel } from "./live-panels.js";
import { NodesPanel } from "./nodes-panel.js";
import { OperatorStore } from "./operator-store.js";
import { AuditPanel, HistoryPanel } from "./search-panels.js";

/** The outcome of the last action, shown at the top of the page. */
type Outcome = { kind: "done"; text: string } | { kind: "failed"; text: string } | undefined;

/**
 * The web operator console at /admin (O2, O3): the same sign-in and SDK as the softphone; a live
 * view pushed by the server every second (server, calls with media counters, users with devices
 * and addresses), the audit log and the call history with filters and CSV export, and the
 * operator's actions, each confirmed first and its result shown.
 */
export function OperatorApp() {
  const softphone = useStore();
  const operatorStore = useMemo(() => new OperatorStore(softphone), [softphone]);
  useEffect(() => operatorStore.start(), [operatorStore]);
  const state = useSyncExternalStore(operatorStore.subscribe, operatorStore.getState);
  const { t } = useAdminI18n();
  const i18n = useI18n();
  const [pending, setPending] = useState<Confirmation | undefined>(undefined);
  const [outcome, setOutcome] = useState<Outcome>(undefined);
  const ask = useCallback<Ask>((confirmation) => setPending(confirmation), []);

  useEffect(() => {
    document.title = `${t("consoleTitle")} · ${i18n.t("appName")}`;
  });

  return (
    <div className="shell operator">
      <OperatorHeader />
      <main className="main operator__main" id="main" tabIndex={-1}>
        <div className="operator__outcome">
          <p className="form-message form-message--success" role="status" data-testid="operator-result">
            {outcome?.kind === "done" ? outcome.text : ""}
          </p>
          {outcome?.kind === "failed" ? (
            <p className="form-message form-message--error" role="alert">
              {outcome.text}
            </p>
          ) : null}
        </div>
        {state.access === "denied" ? (
          <p className="banner banner--warning" role="alert" data-testid="not-operator">
            {t("notOperator")}
          </p>
        ) : state.snapshot ? (
          <>
            <p className="muted operator__live">{t("lastUpdate")}</p>
            <ServerPanel snapshot={state.snapshot} store={operatorStore} ask={ask} />
            <NodesPanel snapshot={state.snapshot} />
            <CallsPanel snapshot={state.snapshot} store={operatorStore} ask={ask} />
            <UsersPanel snapshot={state.snapshot} store={operatorStore} ask={ask} />
            <AuditPanel store={operatorStore} />
            <HistoryPanel store={operatorStore} />
          </>
        ) : state.error !== undefined ? (
          <p className="banner banner--warning" role="alert">
            {t("subscribeFailed", { message: errorText(i18n.t, state.error) })}
          </p>
        ) : (
          <p className="muted" role="status">
            {t("loading")}
          </p>
        )}
      </main>
      {pending ? (
        <ConfirmDialog
          confirmation={pending}
          t={t}
          onClose={(result) => {
            setPending(undefined);
            if (result) setOutcome(result);
          }}
          describe={(error) => errorText(i18n.t, error)}
        />
      ) : null}
    </div>
  );
}

function OperatorHeader() {
  const { t } = useAdminI18n();
  const store = useStore();
  const state = useSoftphone();
  const self = state.self;
  return (
    <header className="topbar">
      <div className="brand">
        <span className="brand__mark" aria-hidden="true">
          P
        </span>
        <h1 className="brand__name">{t("consoleTitle")}</h1>
      </div>
      {self ? (
        <div className="topbar__me">
          <div className="topbar__who">
            <span className="topbar__name" data-testid="self-name">
              {self.displayName}
            </span>
            <span className="topbar__username">@{self.username}</span>
          </div>
        </div>
      ) : null}
      <div className="topbar__controls">
        <a className="btn btn--small btn--ghost" href="/">
          {t("openSoftphone")}
        </a>
        <ConnectionIndicator connection={state.connection} />
        <LanguageSelect />
        <button type="button" className="btn btn--small" onClick={() => void store.logout(false)}>
          {t("signOut")}
        </button>
      </div>
    </header>
  );
}

/** A modal confirmation: Escape or Cancel closes it; focus goes to the first control and back after. */
function ConfirmDialog({
  confirmation,
  t,
  onClose,
  describe,
}: {
  confirmation: Confirmation;
  t: AdminTranslate;
  onClose(outcome: Outcome): void;
  describe(error: unknown): string;
}) {
  const titleId = useId();
  const messageId = useId();
  const passwordId = useId();
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement & HTMLButtonElement>(null);
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    first.current?.focus();
    return () => opener?.focus?.();
  }, []);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    try {
      const text = await confirmation.run(password || undefined);
      onClose({ kind: "done", text });
    } catch (error) {
      onClose({ kind: "failed", text: t("failed", { message: describe(error) }) });
    }
  };

  return (
    <div className="modal-backdrop">
      <form
        className="modal card"
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        aria-describedby={messageId}
        onSubmit={(e) => void submit(e)}
        onKeyDown={(e) => {
          if (e.key === "Escape" && !busy) onClose(undefined);
        }}
      >
        <h2 id={titleId}>{t("confirmTitle")}</h2>
        <p id={messageId}>{confirmation.message}</p>
        {confirmation.withPassword ? (
          <div className="field">
            <label htmlFor={passwordId}>{t("newPasswordOptional")}</label>
            <input
              id={passwordId}
              ref={first}
              type="password"
              autoComplete="new-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </div>
        ) : null}
        <div className="modal__actions">
          <button type="button" className="btn" disabled={busy} onClick={() => onClose(undefined)}>
            {t("cancel")}
          </button>
          <button
            type="submit"
            className={`btn ${confirmation.danger ? "btn--danger" : "btn--primary"}`}
            disabled={busy}
            ref={confirmation.withPassword ? undefined : first}
          >
            {t("confirm")}
          </button>
        </div>
      </form>
    </div>
  );
}
