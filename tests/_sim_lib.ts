/**
 * Shared helpers for the simulator tests (tests/sim_*.test.ts): builds the
 * simulator bridge once (make -C ffi sim, under a file lock so parallel test
 * files do not race) and runs kernels through src/backend/bridge.ts.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { Bridge, BridgeError, type DispatchMode, type Pipeline } from "../src/backend/bridge.ts";

/** Assertions (node:assert, built into Deno: no registry needed). */
export function assert(cond: unknown, message?: string): asserts cond {
  ok(cond, message);
}
export function assertEquals<T>(actual: T, expected: T, message?: string) {
  deepStrictEqual(actual, expected, message);
}

const ROOT = new URL("..", import.meta.url).pathname;
export const FFI_DIR = `${ROOT}ffi`;
export const SIM_LIB = `${FFI_DIR}/build/libsim_bridge.so`;
export const FIXTURES = `${ROOT}tests/fixtures/sim`;
/** Compiled kernels shared by the test files (git-ignored build folder). */
export const TEST_CACHE = `${FFI_DIR}/build/sim-test-cache`;

let built: Promise<void> | undefined;

/** Builds the simulator once per process; parallel processes wait on a lock. */
export function buildSim(): Promise<void> {
  built ??= (async () => {
    await Deno.mkdir(`${FFI_DIR}/build`, { recursive: true });
    using lock = await Deno.open(`${FFI_DIR}/build/.sim-build.lock`, {
      create: true,
      write: true,
    });
    await lock.lock(true);
    const out = await new Deno.Command("make", {
      args: ["-s", "-C", FFI_DIR, "sim"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    await lock.unlock();
    if (!out.success) {
      throw new Error(`make -C ffi sim failed:\n${new TextDecoder().decode(out.stderr)}`);
    }
  })();
  return built;
}

/** Opens a simulator device (built first); options as mb_device_open's. */
export async function openSim(
  options: Record<string, string | number | boolean | undefined> = {},
): Promise<Bridge> {
  await buildSim();
  return Bridge.open(SIM_LIB, { cache_dir: TEST_CACHE, ...options });
}

export function fixture(name: string): string {
  return Deno.readTextFileSync(`${FIXTURES}/${name}`);
}

export function bytesOf(view: ArrayBufferView): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(view.byteLength);
  out.set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  return out;
}

/** One binding of a dispatch: a buffer with initial data or a length, or setBytes. */
export type Binding =
  | { index: number; data: ArrayBufferView }
  | { index: number; length: number }
  | { index: number; bytes: ArrayBufferView };

export interface DispatchSpec {
  mode?: DispatchMode;
  grid: readonly [number, number, number];
  group: readonly [number, number, number];
  threadgroupMemory?: { index: number; length: number }[];
}

/**
 * Compiles nothing: binds, dispatches once and returns the final contents of
 * every buffer binding, by index.
 */
export async function runOnce(
  bridge: Bridge,
  pipeline: Pipeline,
  bindings: Binding[],
  spec: DispatchSpec,
): Promise<Map<number, Uint8Array>> {
  const buffers = new Map<number, ReturnType<Bridge["buffer"]>>();
  using cmd = bridge.command();
  try {
    cmd.setPipeline(pipeline);
    for (const b of bindings) {
      if ("bytes" in b) {
        cmd.setBytes(b.index, bytesOf(b.bytes));
        continue;
      }
      const length = "data" in b ? b.data.byteLength : b.length;
      const buf = bridge.buffer(length);
      if ("data" in b) buf.write(bytesOf(b.data));
      buffers.set(b.index, buf);
      cmd.setBuffer(b.index, buf);
    }
    for (const t of spec.threadgroupMemory ?? []) cmd.setThreadgroupMemory(t.index, t.length);
    cmd.dispatch(spec.mode ?? "threads", spec.grid, spec.group);
    await cmd.run(1, 1);
    const out = new Map<number, Uint8Array>();
    for (const [i, b] of buffers) out.set(i, b.read());
    return out;
  } finally {
    for (const b of buffers.values()) b.free();
  }
}

export function f32(bytes: Uint8Array | undefined): Float32Array {
  if (!bytes) throw new Error("no such output");
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

export function u32(bytes: Uint8Array | undefined): Uint32Array {
  if (!bytes) throw new Error("no such output");
  return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** A seeded generator (mulberry32) for reproducible inputs. */
export function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number) {
  if (actual.length !== expected.length) {
    throw new Error(`length ${actual.length} != expected ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    if (!(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)))) {
      throw new Error(`element ${i}: got ${a}, expected ${e} (tolerance ${tol})`);
    }
  }
}

export function i32(bytes: Uint8Array | undefined): Int32Array {
  if (!bytes) throw new Error("no such output");
  return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

export function u16(bytes: Uint8Array | undefined): Uint16Array {
  if (!bytes) throw new Error("no such output");
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
}

/** Compiles `source` and runs `fn` once; buffer contents by binding index. */
export async function runKernel(
  bridge: Bridge,
  source: string,
  fn: string,
  bindings: Binding[],
  spec: DispatchSpec,
  options: Record<string, string | number | boolean | undefined> = {},
): Promise<Map<number, Uint8Array>> {
  using p = await bridge.compile(source, fn, { source_name: `${fn}.metal`, ...options });
  return await runOnce(bridge, p, bindings, spec);
}

/** MSL source with the usual prologue. */
export function msl(body: string): string {
  return `#include <metal_stdlib>\nusing namespace metal;\n${body}`;
}

// ---- float16 / bfloat16, computed independently of the simulator --------

/** The bits of the float16 nearest to v (round to nearest even). */
export function halfBits(v: number): number {
  const f = new Float32Array([v]);
  const b = new Uint32Array(f.buffer)[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = ((b >>> 23) & 0xff) - 127 + 15;
  const mant = b & 0x7fffff;
  if (Number.isNaN(v)) return 0x7e00;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    // subnormal: shift the implicit bit in, round to nearest even
    if (exp < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - exp;
    let h = m >>> shift;
    const rest = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = sign | (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return h;
}

export function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f, mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** v rounded to float32, then to float16 (as a GPU rounds each operation). */
export function toHalf(v: number): number {
  return halfValue(halfBits(Math.fround(v)));
}

/** The bits of the bfloat16 nearest to float32(v) (round to nearest even). */
export function bfloatBits(v: number): number {
  const b = new Uint32Array(new Float32Array([v]).buffer)[0];
  if (Number.isNaN(v)) return 0x7fc0;
  const rounded = b + 0x7fff + ((b >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

export function bfloatValue(h: number): number {
  return new Float32Array(new Uint32Array([h << 16]).buffer)[0];
}

export function toBfloat(v: number): number {
  return bfloatValue(bfloatBits(Math.fround(v)));
}

/** Asserts that p rejects with a BridgeError; returns it. */
export async function failure(p: Promise<unknown>): Promise<BridgeError> {
  const e = await p.then(() => undefined, (e) => e);
  assert(e instanceof BridgeError, `expected a BridgeError, got ${e}`);
  return e;
}

/** After a failure, the same device still runs a good kernel (relu) correctly. */
export async function assertDeviceStillWorks(sim: Bridge): Promise<void> {
  const out = await runKernel(
    sim,
    fixture("relu.metal"),
    "relu_f32",
    [
      { index: 0, data: new Float32Array([-1, 2, -3, 4]) },
      { index: 1, length: 16 },
      { index: 2, bytes: new Uint32Array([1]) },
    ],
    { grid: [1, 1, 1], group: [1, 1, 1] },
    { source_name: "relu.metal" },
  );
  assertEquals(Array.from(f32(out.get(1))), [0, 2, 0, 4]);
}
