/**
 * A weld's files before they land: a staging folder shaped like a workspace
 * (registry/, references/<set>/, kernels/<set>/) inside the workspace's
 * .agent-steel/, so moving a file in is a rename on one file system. The
 * registry entry is a file of its own, registry/welded.<name>.json, so a
 * weld never rewrites a file the user has.
 *
 * Landing: every target is checked absent first, then the reference and the
 * kernel are renamed into place and the registry file last — the problem
 * exists for a run only once all its files do. A rename that fails puts the
 * ones already moved back, so the workspace is as it was.
 */
import { dirname, join, relative } from "node:path";
import { type Workspace, workspaceAt } from "../registry/workspace.ts";
import type { ProblemSet } from "../registry/schema.ts";

/** The registry file of one welded problem, relative to the workspace. */
export const registryFileOf = (name: string) => `registry/welded.${name}.json`;

export class Staging {
  private constructor(
    readonly dir: string,
    readonly name: string,
    readonly set: ProblemSet,
  ) {}

  static async create(ws: Workspace, name: string, set: ProblemSet): Promise<Staging> {
    const parent = join(ws.root, ".agent-steel", "staging");
    await Deno.mkdir(parent, { recursive: true });
    const dir = await Deno.makeTempDir({ dir: parent, prefix: `weld-${name}-` });
    for (const d of ["registry", `references/${set}`, `kernels/${set}`]) {
      await Deno.mkdir(join(dir, d), { recursive: true });
    }
    return new Staging(dir, name, set);
  }

  /** The files, relative to a workspace root, in the order they land. */
  get files(): string[] {
    return [
      `references/${this.set}/${this.name}.py`,
      `kernels/${this.set}/${this.name}.metal`,
      registryFileOf(this.name),
    ];
  }

  get workspace(): Workspace {
    return workspaceAt(this.dir);
  }
  get referenceDir(): string {
    return join(this.dir, "references", this.set);
  }

  writeReference(text: string) {
    return Deno.writeTextFile(join(this.dir, this.files[0]), text);
  }
  writeKernel(text: string) {
    return Deno.writeTextFile(join(this.dir, this.files[1]), text);
  }
  writeRegistry(file: unknown) {
    return Deno.writeTextFile(join(this.dir, this.files[2]), JSON.stringify(file, null, 2) + "\n");
  }

  /** Move every file into `ws` (see the top of this file); returns the paths written. */
  async land(ws: Workspace): Promise<string[]> {
    const moves = this.files.map((f) => ({ from: join(this.dir, f), to: join(ws.root, f) }));
    for (const m of moves) {
      if (await exists(m.to)) throw new Error(`${m.to} appeared while welding; nothing was moved`);
    }
    const done: { from: string; to: string }[] = [];
    try {
      for (const m of moves) {
        await Deno.mkdir(dirname(m.to), { recursive: true });
        await Deno.rename(m.from, m.to);
        done.push(m);
      }
    } catch (e) {
      for (const m of done.reverse()) await Deno.rename(m.to, m.from).catch(() => {});
      throw e;
    }
    await syncDir(join(ws.root, "registry"));
    return moves.map((m) => relative(ws.root, m.to));
  }

  async remove(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function syncDir(dir: string) {
  try {
    using d = await Deno.open(dir, { read: true });
    await d.sync(); // the renames survive a power cut
  } catch { /* not every platform syncs a folder */ }
}
