import { type AuditEntry, CALL_OUTCOMES, type OperatorHistoryCall } from "@parley/protocol";
import { type FormEvent, useCallback, useEffect, useId, useState } from "react";
import { errorText, formatDuration } from "../app/ui.js";
import { useI18n } from "../i18n.js";
import { type AdminKey, useAdminI18n } from "./admin-i18n.js";
import { downloadText, fileStamp, toCsv } from "./csv.js";
import { localTime } from "./live-panels.js";
import type { OperatorStore } from "./operator-store.js";

/** Actions offered in the audit filter (the server accepts any string). */
const AUDIT_ACTIONS = [
  "login",
  "login_failed",
  "register",
  "logout",
  "password_changed",
  "account_deleted",
  "admin.kick",
  "admin.disable",
  "admin.enable",
  "admin.reset_password",
  "admin.hangup",
  "admin.signup",
  "admin.user_added",
  "admin.grant_operator",
  "admin.revoke_operator",
];

/** `datetime-local` input value (local time, no zone) to ISO 8601 UTC; undefined when empty. */
function toIso(local: string): string | undefined {
  if (!local) return undefined;
  const ms = new Date(local).getTime();
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

interface Filters {
  user: string;
  choice: string;
  from: string;
  to: string;
}

const EMPTY: Filters = { user: "", choice: "", from: "", to: "" };

/** User, action-or-outcome, from and to; Search and Export CSV. */
function FilterForm({
  filters,
  setFilters,
  choiceLabel,
  choices,
  anyLabel,
  exportLabel,
  onSearch,
  onExport,
  busy,
}: {
  filters: Filters;
  setFilters(filters: Filters): void;
  choiceLabel: AdminKey;
  choices: readonly string[];
  anyLabel: string;
  exportLabel: AdminKey;
  onSearch(): void;
  onExport(): void;
  busy: boolean;
}) {
  const { t } = useAdminI18n();
  const ids = { user: useId(), choice: useId(), from: useId(), to: useId() };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onSearch();
  };
  return (
    <form className="operator__filters" onSubmit={submit}>
      <div className="field">
        <label htmlFor={ids.user}>{t("filterUser")}</label>
        <input
          id={ids.user}
          value={filters.user}
          autoComplete="off"
          onChange={(e) => setFilters({ ...filters, user: e.target.value })}
        />
      </div>
      <div className="field">
        <label htmlFor={ids.choice}>{t(choiceLabel)}</label>
        <select
          id={ids.choice}
          value={filters.choice}
          onChange={(e) => setFilters({ ...filters, choice: e.target.value })}
        >
          <option value="">{anyLabel}</option>
          {choices.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={ids.from}>{t("filterFrom")}</label>
        <input
          id={ids.from}
          type="datetime-local"
          value={filters.from}
          onChange={(e) => setFilters({ ...filters, from: e.target.value })}
        />
      </div>
      <div className="field">
        <label htmlFor={ids.to}>{t("filterTo")}</label>
        <input
          id={ids.to}
          type="datetime-local"
          value={filters.to}
          onChange={(e) => setFilters({ ...filters, to: e.target.value })}
        />
      </div>
      <div className="operator__filter-buttons">
        <button type="submit" className="btn btn--primary btn--small" disabled={busy}>
          {t("search")}
        </button>
        <button type="button" className="btn btn--small" onClick={onExport} aria-label={t(exportLabel)}>
          {t("exportCsv")}
        </button>
      </div>
    </form>
  );
}

/** Runs a search on mount and on demand; keeps rows, errors and a busy flag. */
function useSearch<T>(search: () => Promise<T[]>) {
  const [rows, setRows] = useState<T[]>([]);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const run = useCallback(async () => {
    setBusy(true);
    try {
      setRows(await search());
      setError(undefined);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }, [search]);
  return { rows, error, busy, run };
}

export function AuditPanel({ store }: { store: OperatorStore }) {
  const { t, language } = useAdminI18n();
  const i18n = useI18n();
  const headingId = useId();
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const search = useCallback(async (): Promise<AuditEntry[]> => {
    const since = toIso(filters.from);
    const until = toIso(filters.to);
    const { entries } = await store.request("operator.audit", {
      limit: 1000,
      ...(filters.user.trim() ? { username: filters.user.trim() } : {}),
      ...(filters.choice ? { action: filters.choice } : {}),
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
    });
    return entries.reverse();
  }, [store, filters]);
  const { rows, error, busy, run } = useSearch(search);
  // biome-ignore lint/correctness/useExhaustiveDependencies: load once; later searches are on demand
  useEffect(() => void run(), []);
  const exportCsv = () =>
    downloadText(
      `parley-audit-${fileStamp()}.csv`,
      toCsv(
        ["time", "action", "actor", "user", "address", "detail"],
        rows.map((e) => [e.at, e.action, e.actor, e.username, e.address, e.detail]),
      ),
    );
  return (
    <section className="card" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>{t("auditLog")}</h2>
        <span className="muted" role="status">
          {t(new Intl.PluralRules(language).select(rows.length) === "one" ? "entriesOne" : "entries", {
            count: rows.length,
          })}
        </span>
      </div>
      <FilterForm
        filters={filters}
        setFilters={setFilters}
        choiceLabel="filterAction"
        choices={AUDIT_ACTIONS}
        anyLabel={t("anyOutcome")}
        exportLabel="exportAuditCsv"
        onSearch={() => void run()}
        onExport={exportCsv}
        busy={busy}
      />
      {error !== undefined ? (
        <p className="form-message form-message--error" role="alert">
          {errorText(i18n.t, error)}
        </p>
      ) : null}
      {rows.length === 0 ? (
        <p className="muted">{t("noEntries")}</p>
      ) : (
        <div className="table-wrap table-wrap--scroll">
          <table className="operator__table" data-testid="audit-table">
            <thead>
              <tr>
                <th scope="col">{t("time")}</th>
                <th scope="col">{t("action")}</th>
                <th scope="col">{t("actor")}</th>
                <th scope="col">{t("user")}</th>
                <th scope="col">{t("address")}</th>
                <th scope="col">{t("detail")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((e) => (
                <tr key={e.id} data-action={e.action}>
                  <td>{localTime(e.at)}</td>
                  <td>
                    <code>{e.action}</code>
                  </td>
                  <td>{e.actor ?? "—"}</td>
                  <td>{e.username ?? "—"}</td>
                  <td>{e.address ?? "—"}</td>
                  <td className="operator__detail">{e.detail ? JSON.stringify(e.detail) : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function HistoryPanel({ store }: { store: OperatorStore }) {
  const { t, language } = useAdminI18n();
  const i18n = useI18n();
  const headingId = useId();
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const search = useCallback(async (): Promise<OperatorHistoryCall[]> => {
    const since = toIso(filters.from);
    const until = toIso(filters.to);
    const { calls } = await store.request("operator.callHistory", {
      limit: 1000,
      ...(filters.user.trim() ? { username: filters.user.trim() } : {}),
      ...(filters.choice ? { outcome: filters.choice as OperatorHistoryCall["outcome"] } : {}),
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
    });
    return calls;
  }, [store, filters]);
  const { rows, error, busy, run } = useSearch(search);
  // biome-ignore lint/correctness/useExhaustiveDependencies: load once; later searches are on demand
  useEffect(() => void run(), []);
  const exportCsv = () =>
    downloadText(
      `parley-calls-${fileStamp()}.csv`,
      toCsv(
        ["call", "caller", "callee", "placed", "answered", "ended", "duration_s", "outcome", "end_reason"],
        rows.map((c) => [
          c.callId,
          c.caller,
          c.callee,
          c.createdAt,
          c.answeredAt,
          c.endedAt,
          Math.round(c.durationMs / 1000),
          c.outcome,
          c.endReason,
        ]),
      ),
    );
  return (
    <section className="card" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>{t("callHistory")}</h2>
        <span className="muted" role="status">
          {t(new Intl.PluralRules(language).select(rows.length) === "one" ? "entriesOne" : "entries", {
            count: rows.length,
          })}
        </span>
      </div>
      <FilterForm
        filters={filters}
        setFilters={setFilters}
        choiceLabel="filterOutcome"
        choices={CALL_OUTCOMES}
        anyLabel={t("anyOutcome")}
        exportLabel="exportHistoryCsv"
        onSearch={() => void run()}
        onExport={exportCsv}
        busy={busy}
      />
      {error !== undefined ? (
        <p className="form-message form-message--error" role="alert">
          {errorText(i18n.t, error)}
        </p>
      ) : null}
      {rows.length === 0 ? (
        <p className="muted">{t("noEntries")}</p>
      ) : (
        <div className="table-wrap table-wrap--scroll">
          <table className="operator__table" data-testid="history-table">
            <thead>
              <tr>
                <th scope="col">{t("placed")}</th>
                <th scope="col">{t("caller")}</th>
                <th scope="col">{t("callee")}</th>
                <th scope="col">{t("duration")}</th>
                <th scope="col">{t("outcome")}</th>
                <th scope="col">{t("endReason")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((c) => (
                <tr key={c.callId} data-call-id={c.callId} data-outcome={c.outcome}>
                  <td>{localTime(c.createdAt)}</td>
                  <td>{c.caller}</td>
                  <td>{c.callee}</td>
                  <td>{c.answeredAt ? formatDuration(c.durationMs) : "—"}</td>
                  <td>{c.outcome}</td>
                  <td>{c.endReason ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
