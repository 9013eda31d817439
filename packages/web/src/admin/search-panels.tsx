import { type AuditEntry, CALL_OUTCOMES, type OperatorHistoryCall } from "@parley/protocol";
import { type FormEvent, type ReactNode, useCallback, useEffect, useId, useState } from "react";
import { errorText, formatDuration } from "../app/ui.js";
import { useI18n } from "../i18n.js";
import { type AdminKey, useAdminI18n } from "./admin-i18n.js";
import { downloadText, fileStamp, toCsv } from "./csv.js";
import { localTime } from "./local-time.js";
import type { OperatorStore } from "./operator-store.js";

/** Actions offered in the audit filter (the server accepts any string). */
const AUDIT_ACTIONS = [
  "login",
  "login_failed",
  "register",
  "register_refused",
  "connection_refused",
  "session_capped",
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

/** The user and time-range part of a search request, from the filter form. */
function commonParams(filters: Filters): { limit: number; username?: string; since?: string; until?: string } {
  const since = toIso(filters.from);
  const until = toIso(filters.to);
  return {
    limit: 1000,
    ...(filters.user.trim() ? { username: filters.user.trim() } : {}),
    ...(since ? { since } : {}),
    ...(until ? { until } : {}),
  };
}

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

/**
 * The frame both search panels share: a card with its heading and live entry count, the filter
 * form, the last error, and the results table (or "No entries") with one column per label.
 */
function SearchPanel({
  title,
  count,
  error,
  form,
  testId,
  columns,
  children,
}: {
  title: AdminKey;
  count: number;
  error: unknown;
  form: Omit<Parameters<typeof FilterForm>[0], "anyLabel">;
  testId: string;
  columns: AdminKey[];
  children: ReactNode;
}) {
  const { t, language } = useAdminI18n();
  const i18n = useI18n();
  const headingId = useId();
  return (
    <section className="card" aria-labelledby={headingId}>
      <div className="card__header">
        <h2 id={headingId}>{t(title)}</h2>
        <span className="muted" role="status">
          {t(new Intl.PluralRules(language).select(count) === "one" ? "entriesOne" : "entries", { count })}
        </span>
      </div>
      <FilterForm {...form} anyLabel={t("anyOutcome")} />
      {error !== undefined ? (
        <p className="form-message form-message--error" role="alert">
          {errorText(i18n.t, error)}
        </p>
      ) : null}
      {count === 0 ? (
        <p className="muted">{t("noEntries")}</p>
      ) : (
        <div className="table-wrap table-wrap--scroll">
          <table className="operator__table" data-testid={testId}>
            <thead>
              <tr>
                {columns.map((column) => (
                  <th key={column} scope="col">
                    {t(column)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>{children}</tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function AuditPanel({ store }: { store: OperatorStore }) {
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const search = useCallback(async (): Promise<AuditEntry[]> => {
    const { entries } = await store.request("operator.audit", {
      ...commonParams(filters),
      ...(filters.choice ? { action: filters.choice } : {}),
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
    <SearchPanel
      title="auditLog"
      count={rows.length}
      error={error}
      form={{
        filters,
        setFilters,
        choiceLabel: "filterAction",
        choices: AUDIT_ACTIONS,
        exportLabel: "exportAuditCsv",
        onSearch: () => void run(),
        onExport: exportCsv,
        busy,
      }}
      testId="audit-table"
      columns={["time", "action", "actor", "user", "address", "detail"]}
    >
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
    </SearchPanel>
  );
}

export function HistoryPanel({ store }: { store: OperatorStore }) {
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const search = useCallback(async (): Promise<OperatorHistoryCall[]> => {
    const { calls } = await store.request("operator.callHistory", {
      ...commonParams(filters),
      ...(filters.choice ? { outcome: filters.choice as OperatorHistoryCall["outcome"] } : {}),
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
    <SearchPanel
      title="callHistory"
      count={rows.length}
      error={error}
      form={{
        filters,
        setFilters,
        choiceLabel: "filterOutcome",
        choices: CALL_OUTCOMES,
        exportLabel: "exportHistoryCsv",
        onSearch: () => void run(),
        onExport: exportCsv,
        busy,
      }}
      testId="history-table"
      columns={["placed", "caller", "callee", "duration", "outcome", "endReason"]}
    >
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
    </SearchPanel>
  );
}
