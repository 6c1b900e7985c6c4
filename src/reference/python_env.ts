/**
 * Which Python runs the MLX worker, whether it can, and `metalbench setup`'s
 * managed environment.
 *
 * Choice, first that applies: $METALBENCH_PYTHON; the managed venv at
 * $METALBENCH_HOME/python (default: ~/Library/Application Support/metalbench
 * on macOS, $XDG_DATA_HOME/metalbench or ~/.local/share/metalbench elsewhere)
 * when it exists; `python3` on PATH.
 */
import { readLines } from "./lines.ts";
import { dataHome } from "../util/paths.ts";

/** MLX fixes the reference numbers and timings: pin it exactly. */
export const MLX_VERSION = "0.32.4";
/** numpy only moves bytes between files and MLX; numpy 2.3+ needs Python 3.11. */
export const NUMPY_REQUIREMENT = "numpy>=1.26,<3";
/** MLX's own floor. */
export const MIN_PYTHON: readonly [number, number] = [3, 10];

/**
 * PyTorch runs the Welder's references (KernelBench's format), on the CPU
 * only; installed on demand by `metalbench setup --torch`, pinned like MLX.
 */
export const TORCH_VERSION = "2.15.0";

export type Env = Record<string, string | undefined>;
type Os = typeof Deno.build.os;
type Arch = typeof Deno.build.arch;

/** What a failed check says to a user: one line, with the command that fixes it in `fix`. */
export class SetupError extends Error {
  override name = "SetupError";
  constructor(readonly problem: string, readonly fix: string) {
    super(`${problem}. Fix: ${fix}`);
  }
}

/** pip requirements for MLX on this platform. */
export function pipRequirements(os: Os = Deno.build.os, arch: Arch = Deno.build.arch): string[] {
  if (os === "darwin" && arch === "aarch64") return [`mlx==${MLX_VERSION}`, NUMPY_REQUIREMENT];
  if (os === "linux") return [`mlx[cpu]==${MLX_VERSION}`, NUMPY_REQUIREMENT];
  throw new SetupError(
    `MLX has no build for ${os}/${arch}`,
    "run MLX references on an Apple silicon Mac or on Linux (or use --metal only)",
  );
}

/** The managed environment's directory. */
export function managedEnvDir(env: Env = Deno.env.toObject(), os: Os = Deno.build.os): string {
  return `${dataHome(env, os)}/python`;
}

export const venvPython = (dir: string) => `${dir}/bin/python`;

export type PythonSource = "METALBENCH_PYTHON" | "managed" | "PATH" | "option";

export interface PythonChoice {
  path: string;
  source: PythonSource;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

export function resolvePython(
  env: Env = Deno.env.toObject(),
  os: Os = Deno.build.os,
): PythonChoice {
  if (env.METALBENCH_PYTHON) return { path: env.METALBENCH_PYTHON, source: "METALBENCH_PYTHON" };
  const managed = venvPython(managedEnvDir(env, os));
  if (isFile(managed)) return { path: managed, source: "managed" };
  return { path: "python3", source: "PATH" };
}

// ---- the errors, with the fix for where the Python came from ----------------

const shellQuote = (s: string) =>
  /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;

function pipFix(path: string): string {
  return `${shellQuote(path)} -m pip install ${pipRequirements().map(shellQuote).join(" ")}`;
}

function label(c: PythonChoice): string {
  if (c.source === "METALBENCH_PYTHON") return `METALBENCH_PYTHON=${c.path}`;
  if (c.source === "managed") return `the managed Python ${c.path}`;
  if (c.source === "PATH") return `${c.path} on PATH`;
  return c.path;
}

const MIN = MIN_PYTHON.join(".");

export function pythonNotRunnable(c: PythonChoice, detail: string): SetupError {
  const what = `${label(c)} is not a runnable Python (${detail})`;
  switch (c.source) {
    case "METALBENCH_PYTHON":
      return new SetupError(
        what,
        `point METALBENCH_PYTHON at a Python >= ${MIN} with mlx, or unset it and run \`metalbench setup\``,
      );
    case "managed":
      return new SetupError(what, "run `metalbench setup` to repair it");
    case "PATH":
      return new SetupError(
        `no Python found (${detail})`,
        `install Python >= ${MIN} as python3, then run \`metalbench setup\``,
      );
    case "option":
      return new SetupError(what, `use a Python >= ${MIN} with mlx`);
  }
}

export function pythonTooOld(c: PythonChoice, version: string): SetupError {
  const what = `${label(c)} is Python ${version}; MLX needs >= ${MIN}`;
  if (c.source === "managed") {
    return new SetupError(
      what,
      `remove ${
        shellQuote(c.path.replace(/\/bin\/python$/, ""))
      } and run \`metalbench setup\` with a python3 >= ${MIN} on PATH`,
    );
  }
  if (c.source === "METALBENCH_PYTHON") {
    return new SetupError(what, `point METALBENCH_PYTHON at a Python >= ${MIN}, or unset it`);
  }
  return new SetupError(what, `install Python >= ${MIN} as python3, then run \`metalbench setup\``);
}

export function packagesMissing(c: PythonChoice, detail: string): SetupError {
  const what = `${label(c)} cannot import mlx/numpy (${detail})`;
  if (c.source === "METALBENCH_PYTHON" || c.source === "option") {
    return new SetupError(what, pipFix(c.path));
  }
  return new SetupError(what, "run `metalbench setup`");
}

/** Why a Python could not be started, briefly. */
export function spawnFailure(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "not found";
  if (e instanceof Deno.errors.PermissionDenied) return "not executable";
  return e instanceof Error ? e.message : String(e);
}

// ---- checking ----------------------------------------------------------------

export interface PythonEnv extends PythonChoice {
  python: string;
  mlx: string;
  numpy: string;
  /** The installed MLX is the pinned one (results from another version may differ). */
  mlxPinned: boolean;
}

const PROBE = `
import json, platform, sys
out = {"python": platform.python_version(), "errors": []}
for name in ("mlx.core", "numpy"):
    try:
        out[name.split(".")[0]] = __import__(name, fromlist=["_"]).__version__
    except Exception as e:
        out["errors"].append("%s: %s" % (type(e).__name__, e))
print(json.dumps(out))
`;

interface Probe {
  python: string;
  mlx?: string;
  numpy?: string;
  errors: string[];
}

export function versionAtLeast(version: string, [major, minor]: readonly [number, number]) {
  const [a, b] = version.split(".").map(Number);
  return a > major || (a === major && b >= minor);
}

async function probe(c: PythonChoice): Promise<Probe> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(c.path, { args: ["-c", PROBE], stdin: "null" }).output();
  } catch (e) {
    throw pythonNotRunnable(c, spawnFailure(e));
  }
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(text) as Probe;
  } catch {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1);
    throw pythonNotRunnable(c, err || `exit code ${out.code}`);
  }
}

/** Check that `c` can run the worker; throws SetupError saying what is missing. */
export async function checkPython(c: PythonChoice): Promise<PythonEnv> {
  const p = await probe(c);
  if (!versionAtLeast(p.python, MIN_PYTHON)) throw pythonTooOld(c, p.python);
  if (!p.mlx || !p.numpy) throw packagesMissing(c, p.errors.join("; "));
  return { ...c, python: p.python, mlx: p.mlx, numpy: p.numpy, mlxPinned: p.mlx === MLX_VERSION };
}

export interface EnsureOptions {
  /** Create or repair the managed venv when the chosen Python cannot run the worker. */
  install: boolean;
  env?: Env;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/**
 * The Python the worker will use, checked. With `install`, a missing or
 * broken environment is replaced by the managed venv (never by changing a
 * METALBENCH_PYTHON the user chose).
 */
export async function ensurePythonEnv(options: EnsureOptions): Promise<PythonEnv> {
  const env = options.env ?? Deno.env.toObject();
  const log = options.log ?? ((line: string) => console.error(line));
  const choice = resolvePython(env);
  try {
    return await checkPython(choice);
  } catch (e) {
    if (!options.install || !(e instanceof SetupError) || choice.source === "METALBENCH_PYTHON") {
      throw e;
    }
  }
  const dir = managedEnvDir(env);
  const python = venvPython(dir);
  if (!isFile(python)) {
    const base = await basePython(env);
    log(`metalbench: creating a Python environment at ${dir} (Python ${base.python})`);
    await Deno.mkdir(dir.replace(/\/[^/]*$/, ""), { recursive: true });
    await run(base.path, ["-m", "venv", dir], log, "creating the venv");
  }
  const requirements = pipRequirements();
  log(`metalbench: installing ${requirements.join(" ")} into ${dir}`);
  await run(
    python,
    ["-m", "pip", "install", "--disable-pip-version-check", ...requirements],
    log,
    "pip install",
  );
  const checked = await checkPython({ path: python, source: "managed" });
  log(`metalbench: Python ${checked.python}, mlx ${checked.mlx}, numpy ${checked.numpy}: ready`);
  return checked;
}

/** A Python >= MIN_PYTHON on PATH to create the venv with. */
async function basePython(env: Env) {
  const names = ["python3", "python3.13", "python3.12", "python3.11", "python3.10"];
  let oldest = "";
  for (const name of names) {
    try {
      const p = await probe({ path: name, source: "PATH" });
      if (versionAtLeast(p.python, MIN_PYTHON)) return { path: name, python: p.python };
      oldest ||= p.python;
    } catch { /* try the next name */ }
  }
  const found = oldest ? `python3 is ${oldest}` : `none on PATH=${env.PATH ?? ""}`;
  throw new SetupError(
    `no Python >= ${MIN} to create the environment with (${found})`,
    `install Python >= ${MIN} as python3, then run \`metalbench setup\``,
  );
}

async function run(cmd: string, args: string[], log: (l: string) => void, what: string) {
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  const relay = async (s: ReadableStream<Uint8Array>) => {
    for await (const line of readLines(s)) log(`  ${line}`);
  };
  const [status] = await Promise.all([child.status, relay(child.stdout), relay(child.stderr)]);
  if (!status.success) {
    throw new SetupError(
      `${what} failed (exit code ${status.code})`,
      "read the output above (on Linux, MLX wheels need glibc >= 2.35), then run `metalbench setup` again",
    );
  }
}

// ---- PyTorch (the Welder's references) -----------------------------------------

/**
 * The pip installs that give a working CPU PyTorch, smallest first. PyPI has
 * no CPU-only build for Linux x86-64: its torch wheel is linked against CUDA
 * and does not import without the CUDA libraries. All of `pip install torch`
 * is 5.3 GB there; the CUDA libraries torch loads at import (measured for
 * 2.15.0) without Triton, cuSOLVER, NVTX and the CUDA bindings, which only
 * GPU code paths use, is 4.0 GB. Each inner list is one `pip install`.
 */
export function torchInstallSteps(
  os: Os = Deno.build.os,
  arch: Arch = Deno.build.arch,
): string[][] {
  const torch = `torch==${TORCH_VERSION}`;
  if (os !== "linux" || arch !== "x86_64") return [[torch]];
  return [
    [
      "--no-deps",
      torch,
      "nvidia-cublas==13.4.1.3",
      "nvidia-cuda-runtime==13.2.86",
      "nvidia-cuda-nvrtc==13.2.86",
      "nvidia-cuda-cupti==13.2.86",
      "nvidia-cufft==12.2.0.57",
      "nvidia-cufile==1.17.1.22",
      "nvidia-cusparse==12.7.10.12",
      "nvidia-nvjitlink==13.2.86",
      "nvidia-cudnn-cu13==9.26.0.51",
      "nvidia-cusparselt-cu13==0.8.1",
      "nvidia-nccl-cu13==2.30.7",
      "nvidia-nvshmem-cu13==3.7.2",
    ],
    // torch's pure-Python requirements, with their own dependencies.
    [
      "filelock",
      "typing-extensions>=4.13.0",
      "sympy>=1.13.3",
      "networkx>=2.5.1",
      "jinja2",
      "fsspec",
    ],
  ];
}

const TORCH_PROBE = `
import json
try:
    import torch
    print(json.dumps({"torch": torch.__version__.split("+")[0]}))
except Exception as e:
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
`;

/** The torch version `python` imports, or why it cannot. */
export async function probeTorch(python: string): Promise<{ torch?: string; error?: string }> {
  const out = await new Deno.Command(python, { args: ["-c", TORCH_PROBE], stdin: "null" }).output()
    .catch((e) => ({ stdout: new Uint8Array(), code: -1, error: spawnFailure(e) }));
  if ("error" in out) return { error: out.error };
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line);
  } catch {
    return { error: `exit code ${out.code}` };
  }
}

/** What a missing PyTorch says, with the fix for where the Python came from. */
export function torchMissing(c: PythonChoice, detail: string): SetupError {
  const what = `${label(c)} cannot import torch (${detail.slice(0, 200)})`;
  if (c.source === "METALBENCH_PYTHON" || c.source === "option") {
    return new SetupError(
      what,
      `${shellQuote(c.path)} -m pip install ${
        torchInstallSteps().flat().filter((a) => a !== "--no-deps").map(shellQuote).join(" ")
      }`,
    );
  }
  return new SetupError(what, "run `metalbench setup --torch` (CPU PyTorch, about 4 GB on Linux)");
}

/**
 * The Python with MLX (as ensurePythonEnv), plus PyTorch. With `install`, the
 * managed venv gets the pinned CPU PyTorch; a METALBENCH_PYTHON is never
 * changed. Concurrent installs (two test files, two shells) take turns on a
 * lock beside the venv, and the second finds the work done.
 */
export async function ensureTorch(options: EnsureOptions): Promise<PythonEnv & { torch: string }> {
  const env = options.env ?? Deno.env.toObject();
  const log = options.log ?? ((line: string) => console.error(line));
  const py = await ensurePythonEnv({ ...options, env, log });
  const first = await probeTorch(py.path);
  if (first.torch) return { ...py, torch: first.torch };
  if (!options.install || py.source !== "managed") throw torchMissing(py, first.error ?? "?");
  const dir = managedEnvDir(env);
  using lock = await Deno.open(`${dir}.torch.lock`, { write: true, create: true, mode: 0o644 });
  await lock.lock(true);
  const again = await probeTorch(py.path);
  if (again.torch) return { ...py, torch: again.torch };
  for (const step of torchInstallSteps()) {
    log(`metalbench: installing ${step.join(" ")} into ${dir}`);
    await run(
      py.path,
      ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", ...step],
      log,
      "pip install (PyTorch)",
    );
  }
  const done = await probeTorch(py.path);
  if (!done.torch) throw torchMissing(py, done.error ?? "?");
  log(`metalbench: torch ${done.torch} (CPU): ready`);
  return { ...py, torch: done.torch };
}
