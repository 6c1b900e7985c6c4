/**
 * What the MLX worker is given, and how its sandbox reads to a user.
 *
 * Reference code is untrusted (an LLM may write it), and it runs inside the
 * worker. So the worker gets only the environment that Python and MLX need
 * (never an API key: keys live only in the process that calls a provider),
 * a private scratch folder it may write, and the folders it may read. The
 * worker itself applies the OS sandbox at its first line (worker.py,
 * "sandbox") and reports what is on in its hello.
 */
import type { Sandbox } from "./protocol.ts";

export type Env = Record<string, string | undefined>;

/** Passed through when set: Python's and the venv's own, the loader's, locale, threads. */
const PASS_NAMES = new Set([
  "PATH",
  "LANG",
  "LANGUAGE",
  "TZ",
  "VIRTUAL_ENV",
  "CONDA_PREFIX",
  "CONDA_DEFAULT_ENV",
  "PYTHONPATH",
  "PYTHONHOME",
  "PYTHONUSERBASE",
  "PYTHONNOUSERSITE",
  "PYENV_VERSION",
  "LD_LIBRARY_PATH",
  "OMP_NUM_THREADS",
  "MKL_NUM_THREADS",
  "VECLIB_MAXIMUM_THREADS",
  "NUMEXPR_NUM_THREADS",
]);
const PASS_PREFIXES = ["LC_", "OPENBLAS_", "MLX_"];
/** Never passed, whatever the name's prefix. */
const SECRET = /KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION/i;

/**
 * The worker's whole environment: the allowed variables of `parent`, TMPDIR
 * inside the scratch folder, then `extra` (the caller's explicit additions).
 * No HOME: Python finds the user's site-packages through the password
 * database, and neither numpy nor MLX reads it.
 */
export function workerEnv(
  parent: Env,
  tmpDir: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(parent)) {
    if (value === undefined || SECRET.test(name)) continue;
    if (PASS_NAMES.has(name) || PASS_PREFIXES.some((p) => name.startsWith(p))) env[name] = value;
  }
  env.TMPDIR = tmpDir;
  return { ...env, ...extra };
}

/** One line: the mechanisms on, then what they hold reference code to, then what is missing. */
export function describeSandbox(s: Sandbox): string {
  const how = [
    s.landlock ? `Landlock ABI ${s.landlock}` : "",
    s.processes ? "seccomp" : "",
    s.network.includes("namespace") ? "user+net namespace" : "",
  ].filter(Boolean);
  const what = [
    s.writes ? "writes: scratch only" : "writes: anywhere",
    s.reads ? "reads: Python, libraries, references, inputs" : "reads: anything",
    s.network.length ? "network: none" : "network: open",
    s.processes ? "no new processes" : "processes: allowed",
    s.signals ? "signals: itself only" : "signals: any own process",
    "env: no API keys",
  ];
  const off = s.notes.length ? ` (off: ${s.notes.join("; ")})` : "";
  return `${how.length ? how.join(", ") : "none"} — ${what.join("; ")}${off}`;
}

/** Nothing at all is on (macOS today, or a Linux that refuses every layer). */
export function sandboxIsOff(s: Sandbox): boolean {
  return !s.writes && !s.reads && s.network.length === 0 && !s.processes && !s.signals;
}
