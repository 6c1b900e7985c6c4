/**
 * `metalbench setup`: make this machine ready: the Python environment with
 * MLX and numpy, and (running from source) the bridge library.
 */
import { defaultBackend, openBackend } from "../backend/select.ts";
import { bridgeAvailable } from "../backend/assets.ts";
import { ensurePythonEnv, ensureTorch } from "../reference/python_env.ts";
import { EXIT } from "./exit_codes.ts";

export async function setupCommand(opts: { quiet?: true; torch?: true }): Promise<number> {
  const log = (line: string) => console.error(line);
  const kind = defaultBackend();
  if (!bridgeAvailable(kind)) {
    // Opening builds the bridge from source when it is missing, and proves it works.
    (await openBackend({ kind })).close();
  }
  const env = await ensurePythonEnv({ install: true, log });
  // PyTorch only on demand: the Welder's references need it, nothing else does.
  const torch = opts.torch ? `, torch ${(await ensureTorch({ install: true, log })).torch}` : "";
  if (!opts.quiet) {
    console.error(
      `metalbench: ready (backend ${kind}; Python ${env.python} at ${env.path}, mlx ${env.mlx}${torch})`,
    );
  }
  return EXIT.OK;
}
