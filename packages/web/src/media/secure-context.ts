/**
 * Browsers give the microphone only to secure contexts (`https:`, or `http:` on localhost). Opened
 * over plain HTTP from another machine, the page has no `navigator.mediaDevices` at all: no
 * permission prompt can fix that, only an HTTPS address can.
 */
export function isInsecureContext(): boolean {
  return window.isSecureContext === false || !navigator.mediaDevices;
}

/**
 * The HTTPS address of the server that served this page: the same host and port, since the server
 * serves HTTPS on its one port when it has a certificate. Undefined when the page is already HTTPS
 * or was not served over HTTP (nothing better to offer).
 */
export function httpsAddress(): string | undefined {
  if (location.protocol !== "http:" || !location.host) return undefined;
  return `https://${location.host}${location.pathname}`;
}
