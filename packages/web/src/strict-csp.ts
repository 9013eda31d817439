/**
 * Runs before anything else of the app (main.tsx imports it first): the server sends a strict
 * Content-Security-Policy (`script-src 'self'`, no 'unsafe-eval'), and the protocol's schemas are
 * zod ones, which probe `new Function("")` to compile faster parsers. Under the CSP that probe
 * throws (caught by zod) but Chromium still reports a violation, so zod is told not to try
 * (`jitless`; parsing stays correct, only its compiled fast path is skipped). zod reads its
 * configuration from this global when it loads, or sees it changed before any schema is built.
 */
const scope = globalThis as { __zod_globalConfig?: Record<string, unknown> };
scope.__zod_globalConfig = Object.assign(scope.__zod_globalConfig ?? {}, { jitless: true });
