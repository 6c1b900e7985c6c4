/** Test helper: a throw-away workspace made of the given files. */
import { dirname, join } from "node:path";

export async function makeWorkspace(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "mb-ws-" });
  await Deno.mkdir(join(root, "registry"), { recursive: true });
  await Deno.mkdir(join(root, "kernels"), { recursive: true });
  await Deno.mkdir(join(root, "references"), { recursive: true });
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(dirname(join(root, path)), { recursive: true });
    await Deno.writeTextFile(join(root, path), text);
  }
  return root;
}
