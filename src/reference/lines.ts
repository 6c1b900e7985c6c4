/**
 * Split a byte stream into text lines (without the "\n"), for child-process
 * pipes. A line longer than `maxChars` is cut there (its end is dropped and
 * " …" marks the cut): a child that writes gigabytes without a newline must
 * not fill our memory.
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  maxChars = 1 << 20,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  let skipping = false; // dropping the rest of a line already cut
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffered.indexOf("\n")) >= 0) {
      if (!skipping) yield buffered.slice(0, end);
      skipping = false;
      buffered = buffered.slice(end + 1);
    }
    if (buffered.length > maxChars) {
      if (!skipping) yield `${buffered.slice(0, maxChars)} …`;
      skipping = true;
      buffered = "";
    }
  }
  buffered += decoder.decode();
  if (buffered && !skipping) yield buffered;
}
