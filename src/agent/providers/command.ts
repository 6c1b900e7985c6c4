/**
 * The "command" provider: any program that reads a prompt on stdin and
 * writes the reply on stdout (`llm`, `ollama run <model>`, a script).
 *
 * The prompt on stdin is plain text, one section per part, in order:
 *
 *     ### SYSTEM
 *     <the system prompt>
 *
 *     ### USER
 *     <a user message>
 *
 *     ### ASSISTANT
 *     <an earlier reply, when the conversation has one>
 *
 * (a section is its `### ROLE` line, the text, then one empty line; SYSTEM
 * is left out when empty). The whole of stdout is the reply. The child also
 * gets METALBENCH_LLM_PURPOSE, METALBENCH_LLM_MAX_TOKENS and
 * METALBENCH_LLM_MODEL in its environment.
 *
 * The child's environment is ours WITHOUT the provider keys: the variables
 * that may hold one (OPENAI_API_KEY, ANTHROPIC_API_KEY, …, and the
 * --api-key-env name) and any variable whose value holds one of their values
 * (a copy under another name). A command that needs a key must find it
 * itself.
 *
 * It runs in its own process group, so a timeout or an abort ends the whole
 * tree (a wrapper script's children too): SIGTERM, then SIGKILL once the
 * program is gone or 2 s later. A program that exits by itself keeps
 * whatever it started in the background (that is its business), but we
 * wait at most 2 s for that to let go of stdout.
 * A non-zero exit or a timeout is a ProviderError carrying the end of the
 * program's stderr. Usage is an estimate (characters / 4), flagged so.
 */
import { ArgvError, splitCommand } from "./argv.ts";
import { oneLine, ProviderError } from "./errors.ts";
import { estimateTokens, finishReply, promptChars } from "./reply.ts";
import {
  type ChatProvider,
  type ChatReply,
  type ChatRequest,
  DEFAULT_TIMEOUT_MS,
  type ProviderOptions,
} from "./types.ts";

/** Variables that may hold a provider's key; never passed to a command. */
export const KEY_VARIABLES = [
  "OPENAI_API_KEY",
  "OPENAI_ADMIN_KEY",
  "ANTHROPIC_API_KEY",
  "ANTHROPIC_AUTH_TOKEN",
] as const;

/** A reply longer than this is not a reply. */
const MAX_STDOUT = 8 * 1024 * 1024;
const STDERR_TAIL = 4096;
const KILL_GRACE_MS = 2000;

export function formatPrompt(req: ChatRequest): string {
  const parts = req.system ? [`### SYSTEM\n${req.system}\n`] : [];
  for (const m of req.messages) parts.push(`### ${m.role.toUpperCase()}\n${m.content}\n`);
  return parts.join("\n");
}

/** Our environment without any provider key, by name or by value. */
export function childEnv(
  keyNames: readonly string[],
  extraSecrets: readonly string[] = [],
): Record<string, string> {
  const env = Deno.env.toObject();
  const names = new Set([...KEY_VARIABLES, ...keyNames]);
  // Short values ("1", "true") would strip unrelated variables; keys are long.
  const secrets = [...extraSecrets, ...[...names].map((n) => env[n])]
    .filter((v): v is string => typeof v === "string" && v.length >= 8);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (names.has(name) || secrets.some((s) => value.includes(s))) continue;
    out[name] = value;
  }
  return out;
}

/** Process groups still running, ended if we exit first (Deno.exit, normal exit). */
const live = new Set<number>();
let unloadHooked = false;
function track(pid: number): void {
  live.add(pid);
  if (unloadHooked) return;
  unloadHooked = true;
  globalThis.addEventListener("unload", () => {
    for (const p of live) killGroup(p, "SIGKILL");
  });
}

function killGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch { /* already gone */ }
}

export function commandProvider(
  opts: ProviderOptions,
  keyNames: readonly string[],
  secrets: readonly string[],
  redact: (s: string) => string,
): ChatProvider {
  const fail = (what: string, fix: string) =>
    new ProviderError("config", `command provider: ${what} — fix: ${fix}`, {
      provider: "command",
    });
  if (!opts.command?.trim()) {
    throw fail("no command given", 'pass --command "PROGRAM ARGS…"');
  }
  let argv: string[];
  try {
    argv = splitCommand(opts.command);
  } catch (e) {
    if (!(e instanceof ArgvError)) throw e;
    throw fail(
      `cannot split the command: ${e.message}`,
      "quote it, or put the pipeline in a script and name the script",
    );
  }
  if (argv.length === 0) throw fail("no command given", 'pass --command "PROGRAM ARGS…"');
  const [program, ...args] = argv;
  const model = opts.model || program.split("/").at(-1)!;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const shown = oneLine(redact(opts.command), 80);

  async function complete(req: ChatRequest): Promise<ChatReply> {
    const started = performance.now();
    const prompt = formatPrompt(req);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(program, {
        args,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        clearEnv: true,
        env: {
          ...childEnv(keyNames, secrets),
          METALBENCH_LLM_PURPOSE: req.purpose,
          METALBENCH_LLM_MAX_TOKENS: String(req.maxTokens),
          METALBENCH_LLM_MODEL: model,
        },
        detached: true,
      }).spawn();
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? "not found"
        : e instanceof Deno.errors.PermissionDenied
        ? "not executable"
        : oneLine(e instanceof Error ? e.message : String(e), 120);
      throw fail(`cannot run \`${program}\`: ${why}`, "check --command (the program and its path)");
    }
    track(child.pid);

    let ended: "timeout" | "abort" | undefined;
    let grace: ReturnType<typeof setTimeout> | undefined;
    const end = (why: "timeout" | "abort") => {
      if (ended) return;
      ended = why;
      killGroup(child.pid, "SIGTERM");
      grace = setTimeout(() => killGroup(child.pid, "SIGKILL"), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => end("timeout"), timeoutMs);
    const onAbort = () => end("abort");
    req.signal?.addEventListener("abort", onAbort, { once: true });
    if (req.signal?.aborted) onAbort();

    const stdout = readCapped(child.stdout, MAX_STDOUT);
    const stderr = readTail(child.stderr, STDERR_TAIL);
    void writeAll(child.stdin, prompt);
    let status: Deno.CommandStatus;
    try {
      status = await child.status;
    } finally {
      clearTimeout(timer);
      clearTimeout(grace);
      req.signal?.removeEventListener("abort", onAbort);
    }
    // Stopped: nothing of its tree may outlive it (a child ignoring SIGTERM, say).
    if (ended) killGroup(child.pid, "SIGKILL");
    live.delete(child.pid);
    // Something it left running could hold the pipes open: wait a little, no more.
    const [out, err] = await Promise.all([
      settle(stdout.done, KILL_GRACE_MS, stdout.cancel),
      settle(stderr.done, KILL_GRACE_MS, stderr.cancel),
    ]);

    if (ended === "abort") throw req.signal!.reason;
    const tail = redact(err.text);
    const lastWords = tail.trim() ? `; stderr: ${oneLine(tail.slice(-300), 300)}` : "";
    const info = { provider: "command" as const, detail: tail };
    if (ended === "timeout") {
      throw new ProviderError(
        "timeout",
        `command (${req.purpose}): \`${shown}\` gave no reply within ${timeoutMs} ms and was stopped${lastWords} — fix: check the program, or raise the timeout`,
        info,
      );
    }
    if (!status.success) {
      const how = status.signal ? `was killed by ${status.signal}` : `exited with ${status.code}`;
      throw new ProviderError(
        "server",
        `command (${req.purpose}): \`${shown}\` ${how}${lastWords} — fix: run it by hand with the prompt on stdin`,
        info,
      );
    }
    if (out.over) {
      throw new ProviderError(
        "bad-reply",
        `command (${req.purpose}): \`${shown}\` wrote more than ${MAX_STDOUT} bytes — fix: check the program's output`,
        info,
      );
    }
    return finishReply({
      text: out.text,
      usage: {
        inputTokens: Math.ceil(promptChars(req) / 4),
        outputTokens: estimateTokens(out.text),
        estimated: true,
      },
      provider: "command",
      model,
      latencyMs: performance.now() - started,
      streamed: false,
    }, req.purpose);
  }

  return { name: "command", model, complete };
}

async function writeAll(stdin: WritableStream<Uint8Array>, text: string): Promise<void> {
  const w = stdin.getWriter();
  try {
    await w.write(new TextEncoder().encode(text));
    await w.close();
  } catch {
    // The program may exit without reading its stdin; its exit status says the rest.
    w.abort().catch(() => {});
  }
}

interface Reading {
  /** What came (all of it, or what came before a cancel); `over` when stdout passed its cap. */
  done: Promise<{ text: string; over: boolean }>;
  cancel: () => void;
}

function readCapped(stream: ReadableStream<Uint8Array>, cap: number): Reading {
  const reader = stream.getReader();
  const done = (async () => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    let over = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (size + value.length > cap) over = true; // keep draining: never block the program
        else {
          chunks.push(value);
          size += value.length;
        }
      }
    } catch { /* cancelled: keep what came */ }
    return { text: new TextDecoder().decode(concat(chunks, size)), over };
  })();
  return { done, cancel: () => void reader.cancel().catch(() => {}) };
}

function readTail(stream: ReadableStream<Uint8Array>, keep: number): Reading {
  const reader = stream.getReader();
  let tail = new Uint8Array(0);
  const done = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const joined = concat([tail, value], tail.length + value.length);
        tail = joined.slice(Math.max(0, joined.length - keep));
      }
    } catch { /* cancelled: keep what came */ }
    return { text: new TextDecoder().decode(tail), over: false };
  })();
  return { done, cancel: () => void reader.cancel().catch(() => {}) };
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c.subarray(0, size - at), at);
    at += c.length;
    if (at >= size) break;
  }
  return out;
}

async function settle<T>(p: Promise<T>, ms: number, cancel: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  const first = await Promise.race([
    p.then(() => "done" as const),
    late.then(() => "late" as const),
  ]);
  clearTimeout(timer);
  if (first === "late") cancel();
  return await p;
}
