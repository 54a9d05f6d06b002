/**
 * Reading an HTTP response body as text with a size cap, chunk by chunk, so a
 * shard that answers with an endless body costs at most `max` bytes: the HTTP
 * bridge's unary answers and the engine-metrics scraper both read this way.
 */

/** The body as text; past `max` bytes the body is cancelled and `tooLarge(max)` is thrown. */
export async function readCapped(res: Response, max: number, tooLarge: (max: number) => Error): Promise<string> {
  if (!res.body) return '';
  const decoder = new TextDecoder();
  let bytes = 0;
  let text = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.length;
    if (bytes > max) {
      await res.body.cancel().catch(() => undefined);
      throw tooLarge(max);
    }
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}
