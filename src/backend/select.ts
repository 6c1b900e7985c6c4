/**
 * Choosing and opening a backend: Metal on Apple Silicon macOS, the MSL
 * simulator elsewhere (or when asked with --backend sim). The simulator's
 * results go to a simulator bucket, never a GPU one.
 */
import { join } from "node:path";
import { Bridge, BridgeError, type DeviceInfo } from "./bridge.ts";
import { type ChipInfo, detectChip } from "./chip.ts";
import { cacheHome, fromFileUrl } from "../util/paths.ts";
import { bridgeAvailable, type BridgeFiles, materializeBridge } from "./assets.ts";

export type BackendKind = "metal" | "sim";

export interface Backend {
  kind: BackendKind;
  bridge: Bridge;
  info: DeviceInfo;
  /** results/<bucket>/ and session.json key: apple-m2-pro, sim-x86_64, ... */
  bucket: string;
  /** The chip, for per-chip kernel variants and peak figures; null on the simulator. */
  chip: ChipInfo | null;
  close(): void;
}

export class BackendError extends Error {
  override name = "BackendError";
  constructor(message: string, readonly fix?: string) {
    super(message);
  }
}

export function defaultBackend(): BackendKind {
  return Deno.build.os === "darwin" && Deno.build.arch === "aarch64" ? "metal" : "sim";
}

/** The repository's ffi/ folder (running from source). */
function ffiDir(): string {
  return fromFileUrl(new URL("../../ffi/", import.meta.url));
}

/** Build the bridge with make when running from source and it is missing. */
async function buildBridge(kind: BackendKind): Promise<void> {
  const target = kind === "metal" ? "metal" : "sim";
  console.error(`metalbench: building the ${kind} bridge (make -C ffi ${target}) …`);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("make", {
      args: ["-C", ffiDir(), target],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch {
    throw new BackendError(
      "cannot build the bridge: `make` is not installed",
      kind === "sim"
        ? "sudo apt-get install make clang-19 libclang-rt-19-dev"
        : "xcode-select --install",
    );
  }
  if (!out.success) {
    const tail = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    throw new BackendError(`building the ${kind} bridge failed: ${tail}`, "metalbench doctor");
  }
}

export interface OpenOptions {
  kind: BackendKind;
  /** Per-dispatch time limit on the simulator. */
  timeoutMs?: number;
  files?: BridgeFiles;
}

export async function openBackend(opts: OpenOptions): Promise<Backend> {
  const { kind } = opts;
  if (kind === "sim" && Deno.build.os !== "linux") {
    throw new BackendError(
      `the simulator runs on Linux (this is ${Deno.build.os}): it needs memfd and seccomp`,
      "use --backend metal on a Mac, or run the simulator in a Linux VM or CI",
    );
  }
  if (kind === "metal" && !(Deno.build.os === "darwin" && Deno.build.arch === "aarch64")) {
    throw new BackendError(
      `the Metal backend needs an Apple Silicon Mac (this is ${Deno.build.os}/${Deno.build.arch})`,
      "use --backend sim to run the kernels on the simulator",
    );
  }
  if (!opts.files && !bridgeAvailable(kind)) {
    if (Deno.build.standalone) {
      throw new BackendError(
        `this metalbench binary carries no ${kind} bridge (built for another platform?)`,
        "download the binary for this platform",
      );
    }
    await buildBridge(kind);
  }
  const files = opts.files ?? await materializeBridge(kind);
  let bridge: Bridge;
  try {
    bridge = Bridge.open(files.library, {
      runner: files.runner,
      shim_dir: files.shimDir,
      cache_dir: kind === "sim" ? join(cacheHome(), "sim") : undefined,
      timeout_ms: opts.timeoutMs,
      // Metal: "command-buffer" times by the command buffer's span instead of
      // pass timestamps (to compare the two on a Mac); unset: pass timestamps.
      device_time: Deno.env.get("METALBENCH_DEVICE_TIME") || undefined,
    });
  } catch (e) {
    if (e instanceof BridgeError) {
      throw new BackendError(e.message, kind === "sim" ? "metalbench doctor" : undefined);
    }
    throw e;
  }
  const info = bridge.info();
  const chip = kind === "metal" ? await detectChip(info) : null;
  const bucket = chip ? chip.bucket : `sim-${Deno.build.arch}`;
  return { kind, bridge, info, bucket, chip, close: () => bridge.close() };
}
