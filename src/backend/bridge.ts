/**
 * A typed, safe face over a bridge library (ffi/bridge.h) opened with
 * Deno.dlopen. Status codes become BridgeError with the library's message;
 * handles are wrapped so they are freed once.
 */
import { BRIDGE_SYMBOLS, type BridgeSymbols } from "./ffi_symbols.ts";
import {
  checkFunctionConstants,
  declaredConstants,
  FunctionConstantError,
} from "./function_constants.ts";

export const ABI_VERSION = 2;

export const STATUS = {
  OK: 0,
  ARGUMENT: 1,
  UNAVAILABLE: 2,
  COMPILE: 3,
  RESOURCE: 4,
  EXECUTION: 5,
  TIMEOUT: 6,
  UNSUPPORTED: 7,
  INTERNAL: 8,
  DEVICE_LOST: 9,
} as const;

export type StatusName = Lowercase<keyof typeof STATUS>;

const STATUS_NAMES = Object.fromEntries(
  Object.entries(STATUS).map(([k, v]) => [v, k.toLowerCase() as StatusName]),
) as Record<number, StatusName>;

export class BridgeError extends Error {
  override name = "BridgeError";
  constructor(readonly status: StatusName, message: string) {
    super(message);
  }
}

const ERR_CAP = 64 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A NUL-terminated C string in a fresh buffer. */
function cstr(s: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

function fromCstr(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return decoder.decode(end < 0 ? buf : buf.subarray(0, end));
}

/** "key=value" lines, as the bridge's option strings are written. */
export function optionString(options: Record<string, string | number | boolean | undefined>) {
  return Object.entries(options)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === "boolean" ? (v ? 1 : 0) : v}`)
    .join("\n");
}

type Lib = Deno.DynamicLibrary<BridgeSymbols>;

function check(status: number, err: Uint8Array, what: string) {
  if (status === STATUS.OK) return;
  const name = STATUS_NAMES[status] ?? "internal";
  const text = fromCstr(err) || `${what} failed with status ${status}`;
  throw new BridgeError(name, text);
}

function outPointer(): BigUint64Array<ArrayBuffer> {
  return new BigUint64Array(1);
}

function pointerFrom(out: BigUint64Array, what: string): Deno.PointerObject {
  const p = Deno.UnsafePointer.create(out[0]);
  if (p === null) throw new BridgeError("internal", `${what} returned no handle`);
  return p;
}

/**
 * What a run's device_ns measures (mb_device_info's "device_time"):
 * gpu-pass-timestamps: GPU time inside the launch's compute passes, from
 * timestamps at their start and end; gpu-command-buffer: the command
 * buffer's GPU span (GPUEndTime - GPUStartTime), gaps between passes
 * included; runner-cpu-time: CPU time of the simulator's runner process.
 */
export type DeviceTimeKind = "gpu-pass-timestamps" | "gpu-command-buffer" | "runner-cpu-time";

/** The kind of device time a device reports (older Metal bridges: the command buffer's span). */
export function deviceTimeKind(info: Pick<DeviceInfo, "backend" | "device_time">): DeviceTimeKind {
  return info.device_time ?? (info.backend === "sim" ? "runner-cpu-time" : "gpu-command-buffer");
}

export interface DeviceInfo {
  backend: "metal" | "sim";
  name: string;
  timer: "gpu-timestamps" | "cpu-monotonic";
  /** What device_ns measures; absent from older bridges. */
  device_time?: DeviceTimeKind;
  /** Metal layers on in this process (capture, api-validation, shader-validation). */
  layers?: string[];
  gpu_cores: number;
  max_threads_per_threadgroup: number;
  max_threadgroup_memory: number;
  recommended_working_set: number;
  simd_width: number;
  family: string;
  [extra: string]: unknown;
}

export interface PipelineFacts {
  maxTotalThreadsPerThreadgroup: number;
  threadExecutionWidth: number;
  staticThreadgroupMemoryLength: number;
}

export interface RunTimes {
  wallNs: Float64Array;
  deviceNs: Float64Array;
}

/**
 * Nonblocking calls (compile, run, capture) still executing on Deno's
 * worker threads. Unloading the library under one of them would crash the
 * process, so closing waits for them.
 */
class InFlight {
  readonly #calls = new Set<Promise<unknown>>();
  track<T>(call: Promise<T>): Promise<T> {
    this.#calls.add(call);
    const forget = () => this.#calls.delete(call);
    call.then(forget, forget);
    return call;
  }
  async settled(): Promise<void> {
    while (this.#calls.size) await Promise.allSettled([...this.#calls]);
  }
  get busy(): boolean {
    return this.#calls.size > 0;
  }
}

/**
 * The library as the device and its handles share it: once the device is
 * closed no call reaches the library (a handle freed afterwards is a no-op,
 * its memory went with the device), and the library is unloaded only when
 * no call is executing.
 */
class Native {
  readonly calls = new InFlight();
  closed = false;
  constructor(readonly lib: Lib) {}
  get symbols() {
    if (this.closed) throw new BridgeError("argument", "the device is closed");
    return this.lib.symbols;
  }
}

/** An open bridge library and its device. */
export class Bridge {
  readonly #native: Native;
  readonly #device: Deno.PointerObject;
  #backend?: DeviceInfo["backend"];

  private constructor(lib: Lib, device: Deno.PointerObject) {
    this.#native = new Native(lib);
    this.#device = device;
  }

  /** Open the library at `path` and its device. */
  static open(path: string, options: Record<string, string | number | boolean | undefined>) {
    let lib: Lib;
    try {
      lib = Deno.dlopen(path, BRIDGE_SYMBOLS);
    } catch (e) {
      throw new BridgeError(
        "unavailable",
        `cannot load the bridge library ${path}: ${(e as Error).message}`,
      );
    }
    const version = lib.symbols.mb_abi_version();
    if (version !== ABI_VERSION) {
      lib.close();
      throw new BridgeError(
        "unavailable",
        `bridge library ${path} speaks ABI ${version}, this program needs ${ABI_VERSION}; rebuild it (deno task bridge)`,
      );
    }
    const err = new Uint8Array(ERR_CAP);
    const out = outPointer();
    const status = lib.symbols.mb_device_open(
      cstr(optionString(options)),
      new Uint8Array(out.buffer),
      err,
      BigInt(ERR_CAP),
    );
    try {
      check(status, err, "opening the device");
    } catch (e) {
      lib.close();
      throw e;
    }
    return new Bridge(lib, pointerFrom(out, "mb_device_open"));
  }

  get symbols() {
    return this.#native.symbols;
  }

  info(): DeviceInfo {
    const json = new Uint8Array(64 * 1024);
    const err = new Uint8Array(ERR_CAP);
    check(
      this.symbols.mb_device_info(this.#device, json, BigInt(json.length), err, BigInt(ERR_CAP)),
      err,
      "device info",
    );
    return JSON.parse(fromCstr(json)) as DeviceInfo;
  }

  async compile(
    source: string,
    fn: string,
    options: Record<string, string | number | boolean | undefined> = {},
  ): Promise<Pipeline> {
    options = this.#checkedConstants(source, fn, options);
    const err = new Uint8Array(ERR_CAP);
    const out = outPointer();
    const status = await this.#native.calls.track(this.symbols.mb_pipeline_compile(
      this.#device,
      cstr(source),
      cstr(fn),
      cstr(optionString(options)),
      new Uint8Array(out.buffer),
      err,
      BigInt(ERR_CAP),
    ));
    check(status, err, `compiling ${fn}`);
    return new Pipeline(this.#native, pointerFrom(out, "mb_pipeline_compile"), fn);
  }

  /**
   * Function constants parsed for the types the source declares, out-of-range
   * values refused (see function_constants.ts), on both backends alike.
   */
  #checkedConstants(
    source: string,
    fn: string,
    options: Record<string, string | number | boolean | undefined>,
  ) {
    const given = options.function_constants;
    if (typeof given !== "string" || !given.trim()) return options;
    const includeDir = typeof options.include_dir === "string" ? options.include_dir : undefined;
    const backend = this.#backend ??= this.info().backend;
    try {
      const checked = checkFunctionConstants(given, declaredConstants(source, includeDir), {
        vectors: backend === "metal",
        backend,
      });
      return { ...options, function_constants: checked };
    } catch (e) {
      if (e instanceof FunctionConstantError) {
        throw new BridgeError("compile", `kernel ${fn}: ${e.message}`);
      }
      throw e;
    }
  }

  buffer(length: number): DeviceBuffer {
    const err = new Uint8Array(ERR_CAP);
    const out = outPointer();
    check(
      this.symbols.mb_buffer_new(
        this.#device,
        BigInt(length),
        new Uint8Array(out.buffer),
        err,
        BigInt(ERR_CAP),
      ),
      err,
      `allocating a ${length}-byte buffer`,
    );
    return new DeviceBuffer(this.#native, pointerFrom(out, "mb_buffer_new"), length);
  }

  command(): Command {
    const err = new Uint8Array(ERR_CAP);
    const out = outPointer();
    check(
      this.symbols.mb_command_new(this.#device, new Uint8Array(out.buffer), err, BigInt(ERR_CAP)),
      err,
      "creating a command",
    );
    return new Command(this.#native, pointerFrom(out, "mb_command_new"));
  }

  /** Resolves when no nonblocking call (compile, run, capture) is executing. */
  idle(): Promise<void> {
    return this.#native.calls.settled();
  }

  /**
   * Close the device and unload the library; with a call still executing
   * (a kernel running, say, when Ctrl-C arrives) that happens once it returns.
   */
  close() {
    const native = this.#native;
    if (native.closed) return;
    native.closed = true;
    const release = () => {
      native.lib.symbols.mb_device_close(this.#device);
      native.lib.close();
    };
    if (native.calls.busy) native.calls.settled().then(release);
    else release();
  }

  [Symbol.dispose]() {
    this.close();
  }
}

abstract class Handle {
  #freed = false;
  constructor(protected readonly native: Native, readonly pointer: Deno.PointerObject) {}
  protected abstract release(): void;
  free() {
    if (this.#freed || this.native.closed) return;
    this.#freed = true;
    this.release();
  }
  [Symbol.dispose]() {
    this.free();
  }
}

export class Pipeline extends Handle {
  constructor(native: Native, pointer: Deno.PointerObject, readonly functionName: string) {
    super(native, pointer);
  }
  facts(): PipelineFacts {
    const raw = new Uint32Array(4);
    const err = new Uint8Array(ERR_CAP);
    check(
      this.native.symbols.mb_pipeline_facts_get(
        this.pointer,
        new Uint8Array(raw.buffer),
        err,
        BigInt(ERR_CAP),
      ),
      err,
      "pipeline facts",
    );
    return {
      maxTotalThreadsPerThreadgroup: raw[0],
      threadExecutionWidth: raw[1],
      staticThreadgroupMemoryLength: raw[2],
    };
  }
  protected release() {
    this.native.symbols.mb_pipeline_free(this.pointer);
  }
}

export class DeviceBuffer extends Handle {
  constructor(native: Native, pointer: Deno.PointerObject, readonly length: number) {
    super(native, pointer);
  }
  write(data: Uint8Array<ArrayBuffer>, offset = 0) {
    const err = new Uint8Array(ERR_CAP);
    check(
      this.native.symbols.mb_buffer_write(
        this.pointer,
        BigInt(offset),
        data,
        BigInt(data.byteLength),
        err,
        BigInt(ERR_CAP),
      ),
      err,
      "buffer write",
    );
  }
  read(length = this.length, offset = 0): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(length);
    const err = new Uint8Array(ERR_CAP);
    check(
      this.native.symbols.mb_buffer_read(
        this.pointer,
        BigInt(offset),
        out,
        BigInt(length),
        err,
        BigInt(ERR_CAP),
      ),
      err,
      "buffer read",
    );
    return out;
  }
  protected release() {
    this.native.symbols.mb_buffer_free(this.pointer);
  }
}

export type DispatchMode = "threads" | "threadgroups";

export class Command extends Handle {
  #call(fn: (err: Uint8Array<ArrayBuffer>) => number, what: string) {
    const err = new Uint8Array(ERR_CAP);
    check(fn(err), err, what);
  }
  setPipeline(p: Pipeline) {
    this.#call(
      (e) =>
        this.native.symbols.mb_command_set_pipeline(this.pointer, p.pointer, e, BigInt(ERR_CAP)),
      "set pipeline",
    );
  }
  setBuffer(index: number, b: DeviceBuffer, offset = 0) {
    this.#call(
      (e) =>
        this.native.symbols.mb_command_set_buffer(
          this.pointer,
          index,
          b.pointer,
          BigInt(offset),
          e,
          BigInt(ERR_CAP),
        ),
      `set buffer(${index})`,
    );
  }
  setBytes(index: number, bytes: Uint8Array<ArrayBuffer>) {
    this.#call(
      (e) =>
        this.native.symbols.mb_command_set_bytes(
          this.pointer,
          index,
          bytes,
          BigInt(bytes.byteLength),
          e,
          BigInt(ERR_CAP),
        ),
      `set bytes(${index})`,
    );
  }
  setThreadgroupMemory(index: number, length: number) {
    this.#call(
      (e) =>
        this.native.symbols.mb_command_set_threadgroup_memory(
          this.pointer,
          index,
          BigInt(length),
          e,
          BigInt(ERR_CAP),
        ),
      `set threadgroup(${index})`,
    );
  }
  dispatch(
    mode: DispatchMode,
    grid: readonly [number, number, number],
    group: readonly [number, number, number],
  ) {
    this.#call(
      (e) =>
        this.native.symbols.mb_command_dispatch(
          this.pointer,
          mode === "threads" ? 0 : 1,
          grid[0],
          grid[1],
          grid[2],
          group[0],
          group[1],
          group[2],
          e,
          BigInt(ERR_CAP),
        ),
      "dispatch",
    );
  }
  /**
   * Close the current launch: the steps since the previous boundary form one
   * launch. A command of L launches rotates: launch j of a run executes
   * launch j mod L (see mb_command_end_launch).
   */
  endLaunch() {
    this.#call(
      (e) => this.native.symbols.mb_command_end_launch(this.pointer, e, BigInt(ERR_CAP)),
      "end launch",
    );
  }
  /** Run `samples` samples of `batch` launches each; times per launch. */
  async run(samples: number, batch = 1): Promise<RunTimes> {
    const wallNs = new Float64Array(samples);
    const deviceNs = new Float64Array(samples);
    const err = new Uint8Array(ERR_CAP);
    const status = await this.native.calls.track(this.native.symbols.mb_command_run(
      this.pointer,
      samples,
      batch,
      new Uint8Array(wallNs.buffer),
      new Uint8Array(deviceNs.buffer),
      err,
      BigInt(ERR_CAP),
    ));
    check(status, err, "run");
    return { wallNs, deviceNs };
  }
  async capture(tracePath: string) {
    const err = new Uint8Array(ERR_CAP);
    const status = await this.native.calls.track(this.native.symbols.mb_command_capture(
      this.pointer,
      cstr(tracePath),
      err,
      BigInt(ERR_CAP),
    ));
    check(status, err, "capture");
  }
  protected release() {
    this.native.symbols.mb_command_free(this.pointer);
  }
}
