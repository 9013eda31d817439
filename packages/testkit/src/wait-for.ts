/**
 * Polls `condition` until it returns a truthy value (which is returned) or the time is up.
 * On timeout the error names what was awaited and the last value seen.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  what: string,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      last = await condition();
      if (last) return last as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 20));
  }
  const detail = lastError ? `last error: ${(lastError as Error).message}` : `last value: ${JSON.stringify(last)}`;
  throw new Error(`Timed out waiting for ${what} (${detail})`);
}
