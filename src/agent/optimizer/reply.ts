/**
 * Reading the model's reply to a rewrite request. The contract is strict
 * and stated in the prompt: exactly one ```metal block (the whole kernel
 * source) and one `Technique:` line. Anything else is refused with a
 * reason written to be fed straight back to the model.
 */

export type ParsedReply =
  | { ok: true; source: string; technique: string }
  | { ok: false; reason: string };

/** More than this is not a kernel (and would not fit a prompt again). */
export const MAX_SOURCE_CHARS = 200_000;
export const MAX_TECHNIQUE_CHARS = 800;
export const MAX_TECHNIQUE_SENTENCES = 3;

interface Block {
  lang: string;
  body: string;
  closed: boolean;
  /** Line span in the reply, for telling text inside a block from text outside. */
  from: number;
  to: number;
}

/** Fenced code blocks (``` or ~~~, three or more), CommonMark-style: a fence closes on the same character, at least as long. */
function codeBlocks(lines: string[]): Block[] {
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/.exec(lines[i]);
    if (!open) continue;
    const fence = open[1];
    const lang = open[2].toLowerCase();
    const close = new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`);
    let j = i + 1;
    while (j < lines.length && !close.test(lines[j])) j++;
    blocks.push({
      lang,
      body: lines.slice(i + 1, j).join("\n"),
      closed: j < lines.length,
      from: i,
      to: j,
    });
    i = j;
  }
  return blocks;
}

/** Sentences of a short summary: ends at . ! ? followed by a space or the end, not inside numbers or common abbreviations. */
export function countSentences(text: string): number {
  const cleaned = text
    .replace(/\b(e\.g|i\.e|etc|vs|approx|cf)\./gi, "$1")
    .replace(/(\d)\.(\d)/g, "$1$2");
  return cleaned.split(/[.!?]+(?:\s+|$)/).filter((s) => /[A-Za-z0-9]/.test(s)).length;
}

const TECHNIQUE = /^\s*(?:[-*>]\s*)?(?:\*\*|__)?technique(?:\*\*|__)?\s*:\s*(?:\*\*|__)?\s*(.*)$/i;

function describeLangs(blocks: Block[]): string {
  return blocks.map((b) => (b.lang ? `\`\`\`${b.lang}` : "an unlabelled ```")).join(", ");
}

export function parseRewriteReply(text: string): ParsedReply {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const blocks = codeBlocks(lines);
  const metal = blocks.filter((b) => b.lang === "metal");
  const again =
    " — reply with exactly one ```metal block holding the whole kernel source, then `Technique: <2–3 sentences>`";

  if (blocks.length === 0) {
    return { ok: false, reason: `the reply has no code block${again}` };
  }
  if (metal.length === 0) {
    return {
      ok: false,
      reason: `the reply's code is in ${describeLangs(blocks)} block${
        blocks.length > 1 ? "s" : ""
      }, not a \`\`\`metal block${again}`,
    };
  }
  if (metal.length > 1) {
    return {
      ok: false,
      reason:
        `the reply has ${metal.length} \`\`\`metal blocks; only one kernel source can be tested${again}`,
    };
  }
  if (blocks.length > 1) {
    const others = blocks.filter((b) => b !== metal[0]);
    return {
      ok: false,
      reason: `besides the \`\`\`metal block the reply has ${describeLangs(others)} block${
        others.length > 1 ? "s" : ""
      }; host code and other files cannot be used${again}`,
    };
  }
  const block = metal[0];
  if (!block.closed) {
    return {
      ok: false,
      reason:
        `the \`\`\`metal block is never closed (was the reply cut off at its token limit?)${again}`,
    };
  }
  const source = block.body.replace(/^\n+/, "").replace(/\s+$/, "") + "\n";
  if (!source.trim()) return { ok: false, reason: `the \`\`\`metal block is empty${again}` };
  if (source.length > MAX_SOURCE_CHARS) {
    return {
      ok: false,
      reason:
        `the kernel source is ${source.length} characters, over the ${MAX_SOURCE_CHARS} limit${again}`,
    };
  }
  if (source.includes("\0")) {
    return { ok: false, reason: `the kernel source holds a NUL character${again}` };
  }
  if (!/\bkernel\b/.test(source)) {
    return {
      ok: false,
      reason: `the \`\`\`metal block defines no \`kernel\` function; give the whole source${again}`,
    };
  }

  // The technique: a line outside the block; it may run on over the next
  // lines until a blank line or a fence.
  const outside = (i: number) => i < block.from || i > block.to;
  const at = lines.findIndex((l, i) => outside(i) && TECHNIQUE.test(l));
  if (at < 0) {
    return {
      ok: false,
      reason:
        "the reply has no `Technique:` line — after the ```metal block, add one line `Technique: <2–3 sentences on what you changed and why it is faster>`",
    };
  }
  const parts = [TECHNIQUE.exec(lines[at])![1]];
  for (let i = at + 1; i < lines.length && outside(i) && lines[i].trim(); i++) {
    if (/^ {0,3}(`{3,}|~{3,})/.test(lines[i])) break;
    parts.push(lines[i].trim());
  }
  const technique = parts.join(" ").replace(/(\*\*|__)\s*$/, "").replace(/\s+/g, " ").trim();
  if (!/[A-Za-z]/.test(technique)) {
    return {
      ok: false,
      reason:
        "the `Technique:` line is empty — say in 2–3 sentences what you changed and why it is faster",
    };
  }
  const sentences = countSentences(technique);
  if (sentences > MAX_TECHNIQUE_SENTENCES || technique.length > MAX_TECHNIQUE_CHARS) {
    return {
      ok: false,
      reason:
        `the \`Technique:\` line is ${sentences} sentences, ${technique.length} characters — summarize it in 2–3 sentences (at most ${MAX_TECHNIQUE_CHARS} characters)`,
    };
  }
  return { ok: true, source, technique };
}
