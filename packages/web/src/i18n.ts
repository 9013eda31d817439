/*
 * The softphone's languages: one dictionary per language in `i18n/` (the French typed against the
 * English), translation with `{name}` placeholders, plural choice, the saved choice and the React
 * context.
 */
import { createContext, useContext } from "react";
import { type Dictionary, en, type MessageKey } from "./i18n/en.js";
import { fr } from "./i18n/fr.js";

export type { Dictionary, MessageKey } from "./i18n/en.js";

export const LANGUAGES = ["en", "fr"] as const;
export type Language = (typeof LANGUAGES)[number];

export const LANGUAGE_NAMES: Record<Language, string> = { en: "English", fr: "Français" };

const DICTIONARIES: Record<Language, Dictionary> = { en, fr };

export type Vars = Record<string, string | number>;
export type Translate = (key: MessageKey, vars?: Vars) => string;

export function translate(language: Language, key: MessageKey, vars?: Vars): string {
  const template = DICTIONARIES[language][key];
  if (!vars) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in vars ? String(vars[name]) : whole));
}

/** Picks the `…One` or `…Other` form of a message for `count`. */
export function plural(language: Language, count: number, one: MessageKey, other: MessageKey): MessageKey {
  return new Intl.PluralRules(language).select(count) === "one" ? one : other;
}

const LANGUAGE_KEY = "parley.language";

export function initialLanguage(): Language {
  const saved = localStorage.getItem(LANGUAGE_KEY);
  if (saved === "en" || saved === "fr") return saved;
  return navigator.language.toLowerCase().startsWith("fr") ? "fr" : "en";
}

export function saveLanguage(language: Language): void {
  localStorage.setItem(LANGUAGE_KEY, language);
  document.documentElement.lang = language;
}

export interface I18n {
  language: Language;
  setLanguage(language: Language): void;
  t: Translate;
}

export const I18nContext = createContext<I18n>({
  language: "en",
  setLanguage: () => {},
  t: (key, vars) => translate("en", key, vars),
});

export function useI18n(): I18n {
  return useContext(I18nContext);
}
