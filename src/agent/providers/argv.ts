/**
 * Splits a command line into words the way a POSIX shell would, without
 * running one: whitespace separates words; '…' is literal; "…" is literal
 * but for \" \\ \$ \` and \newline; \ outside quotes takes the next
 * character as it is. Nothing is expanded (no $VAR, ~, globs), so shell
 * operators (| & ; < > ( ) $ `) outside quotes are refused rather than passed
 * on as words a user did not mean.
 */

export class ArgvError extends Error {
  override name = "ArgvError";
}

const OPERATORS = new Set(["|", "&", ";", "<", ">", "(", ")", "$", "`"]);
const DQ_ESCAPES = new Set(['"', "\\", "$", "`", "\n"]);

export function splitCommand(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === " " || c === "\t" || c === "\n") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ArgvError("a ' quote is not closed");
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      for (i++;; i++) {
        if (i >= line.length) throw new ArgvError('a " quote is not closed');
        const d = line[i];
        if (d === '"') break;
        if (d === "\\" && DQ_ESCAPES.has(line[i + 1])) {
          if (line[i + 1] !== "\n") word += line[i + 1];
          i++;
        } else word += d;
      }
    } else if (c === "\\") {
      if (i + 1 >= line.length) throw new ArgvError("the command ends with a lone \\");
      if (line[i + 1] !== "\n") {
        word += line[i + 1];
        inWord = true;
      }
      i++;
    } else if (OPERATORS.has(c)) {
      throw new ArgvError(
        `\`${c}\` needs a shell, and the command runs without one`,
      );
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}
