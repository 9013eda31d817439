/** Largest WebSocket message the server accepts (bytes). Larger frames close the connection with 1009. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/** Usernames: 3-32 characters, lower-case letters, digits, dot, dash, underscore; starts with a letter or digit. */
export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._-]{2,31}$/;
export const USERNAME_MIN = 3;
export const USERNAME_MAX = 32;

/** Passwords: 8-128 characters (OWASP ASVS 2.1.1 / 2.1.2). */
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 128;

export const DISPLAY_NAME_MAX = 64;
export const DEVICE_NAME_MAX = 64;
export const LABEL_MAX = 64;
export const NOTES_MAX = 1000;
export const PHONEBOOK_MAX_ENTRIES = 1000;

/** Largest conference the protocol allows (the operator configures the server's own maximum, default 16). */
export const CONFERENCE_MAX_LIMIT = 64;
