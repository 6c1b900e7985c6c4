/**
 * Options given before a command mean what they mean after it:
 * `metalbench --workspace W list` is `metalbench list --workspace W`.
 *
 * The program parses its options positionally (a command's options belong
 * to that command), so an option typed before `list` lands on the program
 * and `list` would never see it. Before a command's action runs, each
 * option an enclosing command got from the command line is handed down to
 * the command that runs, when that command has the same option; one it does
 * not have is a usage error, as it would be after the command; the same
 * option given on both sides with different values is one too.
 */
import type { CommandUnknownOpts } from "@commander-js/extra-typings";
import { CliError, EXIT } from "./exit_codes.ts";

/** The command path as the user types it: `metalbench agent history`. */
function commandPath(cmd: CommandUnknownOpts): string {
  const names: string[] = [];
  for (let c: CommandUnknownOpts | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** A preAction hook for the program: hand options given before a command down to it. */
export function inheritGlobalOptions(_hooked: CommandUnknownOpts, action: CommandUnknownOpts) {
  const own = new Map(action.options.map((o) => [o.attributeName(), o]));
  for (let outer = action.parent; outer; outer = outer.parent) {
    for (const option of outer.options) {
      const key = option.attributeName();
      if (outer.getOptionValueSource(key) !== "cli") continue;
      const flag = option.long ?? option.flags;
      const value = outer.getOptionValue(key);
      if (!own.has(key)) {
        throw new CliError(
          `${flag} (given before '${action.name()}') is not an option of \`${
            commandPath(action)
          }\``,
          EXIT.USAGE,
          `see: ${commandPath(action)} --help`,
        );
      }
      if (action.getOptionValueSource(key) === "cli") {
        if (action.getOptionValue(key) !== value) {
          throw new CliError(
            `${flag} given twice with different values (${JSON.stringify(value)} and ${
              JSON.stringify(action.getOptionValue(key))
            })`,
            EXIT.USAGE,
            "give it once",
          );
        }
        continue;
      }
      action.setOptionValueWithSource(key, value, "cli");
    }
  }
}
