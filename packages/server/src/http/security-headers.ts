import type http from "node:http";

/**
 * The Content-Security-Policy of every response. The web client is one module script and one
 * stylesheet from /assets/ (Vite emits no inline script or style), so nothing inline is allowed:
 * an injected `<script>` or `on*=` attribute does not run. React's `style` props are set through
 * the CSSOM (`element.style.setProperty`), which `style-src 'self'` does not govern, so styles need
 * no 'unsafe-inline' either.
 * - `connect-src 'self'`: the page talks to the server that served it (its WebSocket, /healthz);
 *   CSP Level 3 matches ws:/wss: of the same host with 'self'. WebRTC media is not a fetch.
 * - `media-src 'self' blob: data:`: ring and notification tones; call audio is a MediaStream
 *   (`srcObject`), which CSP does not govern.
 * - `img-src 'self' data:`: the favicon and small inline images.
 * - `frame-ancestors 'none'`: no page may frame the softphone or the operator page (clickjacking).
 * - `base-uri 'none'`, `object-src 'none'`, `form-action 'self'`: no base-tag or plugin tricks,
 *   no form posting elsewhere.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self' blob: data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** The microphone for this origin only; the camera, location and the rest for nobody. */
export const PERMISSIONS_POLICY = "microphone=(self), camera=(), geolocation=(), payment=(), usb=()";

/** Every security header, as one set: the one definition of what each response carries. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // frame-ancestors for browsers that predate it.
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "permissions-policy": PERMISSIONS_POLICY,
};

/**
 * Sets the security headers on a response before anything else writes it; a later `writeHead`
 * merges its own headers with these.
 */
export function applySecurityHeaders(res: http.ServerResponse): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
}

/** The same headers as raw HTTP/1.1 header lines (each ending in CRLF), for responses written to a socket. */
export function securityHeaderLines(): string {
  return Object.entries(SECURITY_HEADERS)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
}
