/** MetalBench: benchmark Metal compute kernels against MLX references. */
import { main } from "./src/cli/main.ts";

Deno.exit(await main(Deno.args));
