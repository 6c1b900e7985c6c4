/** `metalbench docs`: regenerate best_times.md, LINK.md and KERNELS.md. */
import { loadRegistry } from "../registry/load.ts";
import { chooseWorkspace } from "../registry/workspace.ts";
import { writeKernelsDoc, writeSessionDocs } from "../store/markdown.ts";
import { readSession } from "../store/session.ts";
import { lockPathFor, withLock } from "../store/files.ts";
import { EXIT } from "./exit_codes.ts";

export async function docsCommand(opts: { workspace?: string }): Promise<number> {
  const workspace = chooseWorkspace(opts.workspace);
  const registry = loadRegistry(workspace);
  await withLock(lockPathFor(workspace.sessionPath), async () => {
    await writeSessionDocs(await readSession(workspace.sessionPath), workspace);
  });
  await writeKernelsDoc(registry);
  console.error(`metalbench: wrote best_times.md, LINK.md and KERNELS.md in ${workspace.root}`);
  return EXIT.OK;
}
