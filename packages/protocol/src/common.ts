import { z } from "zod";
import {
  DEVICE_NAME_MAX,
  DISPLAY_NAME_MAX,
  LABEL_MAX,
  NOTES_MAX,
  PASSWORD_MAX,
  PASSWORD_MIN,
  USERNAME_PATTERN,
} from "./limits.js";

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f]*$/;

/** Usernames are compared case-insensitively: they are lower-cased before validation. */
export const Username = z.string().trim().toLowerCase().regex(USERNAME_PATTERN, "INVALID_USERNAME");

/** A username as given to look someone up (not validated against the creation rules). */
export const UsernameRef = z.string().trim().toLowerCase().min(1).max(64);

export const Password = z.string().min(PASSWORD_MIN, "INVALID_PASSWORD").max(PASSWORD_MAX, "INVALID_PASSWORD");

export const DisplayName = z.string().trim().min(1).max(DISPLAY_NAME_MAX).regex(NO_CONTROL_CHARS);
export const DeviceName = z.string().trim().min(1).max(DEVICE_NAME_MAX).regex(NO_CONTROL_CHARS);
export const Label = z.string().trim().max(LABEL_MAX).regex(NO_CONTROL_CHARS);
export const Notes = z.string().max(NOTES_MAX);

export const UserId = z.number().int().positive();

/** Statuses a user can choose. */
export const SELECTABLE_STATUSES = ["available", "away", "busy"] as const;
export const SelectableStatus = z.enum(SELECTABLE_STATUSES);
export type SelectableStatus = z.infer<typeof SelectableStatus>;

/**
 * Statuses others see: a chosen one, `in-call` while the user takes part in an answered call,
 * or `offline` when no device is connected.
 */
export const PRESENCE_STATUSES = ["available", "away", "busy", "in-call", "offline"] as const;
export const PresenceStatus = z.enum(PRESENCE_STATUSES);
export type PresenceStatus = z.infer<typeof PresenceStatus>;

/** Timestamps on the wire are ISO 8601 strings in UTC. */
export const Timestamp = z.string();

/** The logged-in user's own account. */
export const Self = z.object({
  id: UserId,
  username: z.string(),
  displayName: z.string(),
  /** The status the user chose; others see it while at least one device is connected. */
  status: SelectableStatus,
  createdAt: Timestamp,
  /** This account may use the operator console (`operator.*` requests, the /admin page). */
  operator: z.boolean(),
});
export type Self = z.infer<typeof Self>;

/** One user as listed in the directory. Never carries an address. */
export const DirectoryUser = z.object({
  id: UserId,
  username: z.string(),
  displayName: z.string(),
  status: PresenceStatus,
  /** Number of connected devices (0 when offline). */
  devices: z.number().int().nonnegative(),
});
export type DirectoryUser = z.infer<typeof DirectoryUser>;

export const PhonebookEntry = z.object({
  id: z.number().int().positive(),
  userId: UserId,
  username: z.string(),
  displayName: z.string(),
  label: z.string(),
  notes: z.string(),
  favourite: z.boolean(),
  createdAt: Timestamp,
});
export type PhonebookEntry = z.infer<typeof PhonebookEntry>;

export const AuthResult = z.object({
  /** Resumable session token. Keep it secret; send it in `auth.resume` after a reconnect. */
  token: z.string(),
  expiresAt: Timestamp,
  sessionId: z.number().int().positive(),
  user: Self,
  /**
   * After `auth.login` and `auth.register`: this device's proof of an earlier login to the
   * account. Keep it (per username) and send it in the next `auth.login`; a new one replaces it.
   */
  deviceToken: z.string().optional(),
});
export type AuthResult = z.infer<typeof AuthResult>;
