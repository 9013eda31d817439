import { type Language, useI18n, type Vars } from "../i18n.js";
import { type AdminKey, en } from "./i18n/en.js";
import { fr } from "./i18n/fr.js";

export type { AdminKey } from "./i18n/en.js";

/** The operator console's translations; the language is the app's. */
const DICTIONARIES: Record<Language, Record<AdminKey, string>> = { en, fr };

export type AdminTranslate = (key: AdminKey, vars?: Vars) => string;

export function useAdminI18n(): { t: AdminTranslate; language: Language } {
  const { language } = useI18n();
  const t: AdminTranslate = (key, vars) => {
    const template = DICTIONARIES[language][key];
    if (!vars) return template;
    return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in vars ? String(vars[name]) : whole));
  };
  return { t, language };
}
