/**
 * Reading the model's replies to the Welder: stage 1 wants exactly one
 * ```python block (the MLX reference) and one ```json block (the registry
 * entry); stage 2 and polish want exactly one ```metal block. Anything else
 * is refused with a reason written to be fed back to the model.
 */

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** More than this is not a reference, an entry or a kernel. */
const MAX_BLOCK_CHARS = 200_000;

/** Fenced blocks (``` or ~~~, three or more), a fence closed by the same character, at least as long. */
export function codeBlocks(text: string): { lang: string; body: string; closed: boolean }[] {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/.exec(lines[i]);
    if (!open) continue;
    const fence = open[1];
    const close = new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`);
    let j = i + 1;
    while (j < lines.length && !close.test(lines[j])) j++;
    blocks.push({
      lang: open[2].toLowerCase(),
      body: lines.slice(i + 1, j).join("\n") + "\n",
      closed: j < lines.length,
    });
    i = j;
  }
  return blocks;
}

function one(text: string, langs: string[], what: string): Parsed<string> {
  const blocks = codeBlocks(text).filter((b) => langs.includes(b.lang));
  const ask = `reply with exactly one \`\`\`${langs[0]} block holding ${what}`;
  if (blocks.length === 0) {
    return { ok: false, reason: `the reply has no \`\`\`${langs[0]} block — ${ask}` };
  }
  if (blocks.length > 1) {
    return {
      ok: false,
      reason: `the reply has ${blocks.length} \`\`\`${langs[0]} blocks — ${ask}`,
    };
  }
  const [b] = blocks;
  if (!b.closed) {
    return { ok: false, reason: `the \`\`\`${langs[0]} block is not closed (cut short?) — ${ask}` };
  }
  if (!b.body.trim()) return { ok: false, reason: `the \`\`\`${langs[0]} block is empty — ${ask}` };
  if (b.body.length > MAX_BLOCK_CHARS) {
    return {
      ok: false,
      reason: `the \`\`\`${langs[0]} block is over ${MAX_BLOCK_CHARS} characters — ${ask}`,
    };
  }
  return { ok: true, value: b.body };
}

/** Stage 1: the MLX reference's source and the registry entry (parsed JSON, not yet validated). */
export function parseReferenceReply(text: string): Parsed<{ python: string; entry: unknown }> {
  const python = one(text, ["python", "py"], "the whole MLX reference file");
  if (!python.ok) return python;
  const json = one(text, ["json"], "the registry entry (one JSON object)");
  if (!json.ok) return json;
  try {
    return { ok: true, value: { python: python.value, entry: JSON.parse(json.value) } };
  } catch (e) {
    return {
      ok: false,
      reason: `the \`\`\`json block is not valid JSON (${
        (e as Error).message
      }) — write the entry as one JSON object, no comments`,
    };
  }
}

/** Stage 2 and polish: the whole Metal source. */
export function parseKernelReply(text: string): Parsed<string> {
  return one(text, ["metal"], "the whole Metal source");
}
