import { useId } from "react";
import { LANGUAGE_NAMES, LANGUAGES, type Language, useI18n } from "../i18n.js";

export function LanguageSelect() {
  const { language, setLanguage, t } = useI18n();
  const id = useId();
  return (
    <div className="inline-field">
      <label htmlFor={id}>{t("language")}</label>
      <select id={id} value={language} onChange={(e) => setLanguage(e.target.value as Language)}>
        {LANGUAGES.map((l) => (
          <option key={l} value={l} lang={l}>
            {LANGUAGE_NAMES[l]}
          </option>
        ))}
      </select>
    </div>
  );
}
