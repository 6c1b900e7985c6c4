/**
 * `--size large` and the problems without one. `large` is optional (only
 * memory-bound problems have it): a problem named on the command line
 * without it is a usage error; `--all` and `--set` skip such problems with
 * a note, so `--set common --size large` measures every memory-bound one.
 */
import type { Problem } from "../registry/load.ts";
import { hasSize, type SizeName } from "../registry/problem.ts";
import { CliError, EXIT } from "./exit_codes.ts";

const list = (ps: Problem[]) => ps.map((p) => p.name).join(", ");

/**
 * The problems that define `size`. `named`: the user chose them by name, so
 * one without the size is an error; otherwise they are left out and
 * `note` says which.
 */
export function problemsAtSize(
  problems: Problem[],
  size: SizeName,
  named: boolean,
  note: (line: string) => void,
): Problem[] {
  const missing = problems.filter((p) => !hasSize(p.entry, size));
  if (!missing.length) return problems;
  const fix = `use --size bench, or give the entry a sizes.${size} in ${missing[0].registryFile}`;
  if (named) {
    throw new CliError(
      `${list(missing)} ${
        missing.length > 1 ? "have" : "has"
      } no '${size}' size (only memory-bound problems have one)`,
      EXIT.USAGE,
      fix,
    );
  }
  const kept = problems.filter((p) => hasSize(p.entry, size));
  if (!kept.length) {
    throw new CliError(`none of the selected problems has a '${size}' size`, EXIT.USAGE, fix);
  }
  note(
    `metalbench: --size ${size}: skipping ${missing.length} problem(s) without a '${size}' size: ${
      list(missing)
    }`,
  );
  return kept;
}
