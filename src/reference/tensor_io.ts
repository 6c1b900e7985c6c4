/**
 * Tensor files, the one format both the Metal side and the MLX worker read
 * and write: raw little-endian elements in C order, no header. float16 and
 * bfloat16 hold their 16-bit patterns (bfloat16 = the top half of float32).
 *
 * On the host, float16/bfloat16 values are widened to Float32Array, so the
 * comparison code sees numbers of one kind per dtype family.
 */
import type { Dtype } from "../registry/schema.ts";
import { dtypeBytes } from "../registry/templates.ts";

export type HostArray = Float32Array | Int32Array | Uint32Array;

// Typed arrays use the host's byte order; every target (arm64, x86-64) is little-endian.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("tensor_io assumes a little-endian host");
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → bfloat16 bits, rounding to nearest even (as MLX's astype does). */
export function toBfloat16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if (Number.isNaN(f32[0])) return ((bits >>> 16) | 0x40) & 0xffff; // keep sign, stay NaN
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function fromBfloat16Bits(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

function checkIntegers(values: ArrayLike<number>, dtype: Dtype, low: number, high: number) {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < low || v > high) {
      throw new RangeError(`value ${v} at index ${i} does not fit ${dtype}`);
    }
  }
}

/** Values → the bytes of a tensor file. */
export function encodeTensor(values: ArrayLike<number>, dtype: Dtype): Uint8Array<ArrayBuffer> {
  const bytes = (a: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }) =>
    new Uint8Array(a.buffer as ArrayBuffer, a.byteOffset, a.byteLength);
  switch (dtype) {
    case "float32":
      return bytes(values instanceof Float32Array ? values : Float32Array.from(values));
    case "float16":
      return bytes(Float16Array.from(values)); // rounds to nearest even
    case "bfloat16":
      return bytes(Uint16Array.from(values, toBfloat16Bits));
    case "int32":
      if (values instanceof Int32Array) return bytes(values);
      checkIntegers(values, dtype, -(2 ** 31), 2 ** 31 - 1);
      return bytes(Int32Array.from(values));
    case "uint32":
      if (values instanceof Uint32Array) return bytes(values);
      checkIntegers(values, dtype, 0, 2 ** 32 - 1);
      return bytes(Uint32Array.from(values));
  }
}

/** The bytes of a tensor file → values (float16/bfloat16 widened to float32). */
export function decodeTensor(data: Uint8Array, dtype: Dtype): HostArray {
  const width = dtypeBytes(dtype);
  if (data.byteLength % width !== 0) {
    throw new RangeError(`${data.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  // Typed-array views need aligned offsets; copy when the caller's bytes are not.
  const aligned = data.byteOffset % width === 0 ? data : data.slice();
  const n = aligned.byteLength / width;
  const { buffer, byteOffset } = aligned;
  switch (dtype) {
    case "float32":
      return new Float32Array(buffer, byteOffset, n).slice();
    case "float16":
      return Float32Array.from(new Float16Array(buffer, byteOffset, n));
    case "bfloat16":
      return Float32Array.from(new Uint16Array(buffer, byteOffset, n), fromBfloat16Bits);
    case "int32":
      return new Int32Array(buffer, byteOffset, n).slice();
    case "uint32":
      return new Uint32Array(buffer, byteOffset, n).slice();
  }
}

export const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Bytes per element of each MLX dtype the worker can report. */
const MLX_ITEM_BYTES: Record<string, number> = {
  bool: 1,
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  float16: 2,
  bfloat16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  uint64: 8,
  int64: 8,
  float64: 8,
  complex64: 8,
};

/** The size of a tensor file the worker wrote, from its MLX dtype name and shape. */
export function producedBytes(dtype: string, shape: readonly number[]): number {
  const width = MLX_ITEM_BYTES[dtype];
  if (width === undefined) throw new RangeError(`unknown MLX dtype '${dtype}'`);
  return numel(shape) * width;
}

export async function writeTensor(path: string, values: ArrayLike<number>, dtype: Dtype) {
  await Deno.writeFile(path, encodeTensor(values, dtype));
}

/** Read a tensor file; with `shape`, its size must match exactly. */
export async function readTensor(
  path: string,
  dtype: Dtype,
  shape?: readonly number[],
): Promise<HostArray> {
  const data = await Deno.readFile(path);
  if (shape) {
    const want = numel(shape) * dtypeBytes(dtype);
    if (data.byteLength !== want) {
      throw new RangeError(
        `${path} has ${data.byteLength} bytes; ${dtype}[${shape.join(",")}] needs ${want}`,
      );
    }
  }
  return decodeTensor(data, dtype);
}

/**
 * Read a file the MLX worker wrote into its scratch folder. Reference code
 * runs in that worker and may write there too, so the file must be a plain
 * file, not a link to something the user can read and the worker cannot:
 * it is checked by name (lstat) and again through the open file, so swapping
 * it between the two checks is caught. Its size must be `size` exactly (read
 * nothing bigger than the tensor the worker said it wrote).
 */
export async function readWorkerFile(
  path: string,
  size: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const named = await Deno.lstat(path);
  if (!named.isFile || named.isSymlink || (named.nlink ?? 1) !== 1) {
    throw new Error(`${path} is not a plain file the MLX worker wrote (a link or special file)`);
  }
  using file = await Deno.open(path, { read: true });
  const opened = await file.stat();
  if (opened.ino !== named.ino || opened.dev !== named.dev || !opened.isFile) {
    throw new Error(`${path} was replaced while being read`);
  }
  if (opened.size !== size) {
    throw new Error(`${path} has ${opened.size} bytes; the tensor it holds has ${size}`);
  }
  const bytes = new Uint8Array(opened.size);
  let at = 0;
  while (at < bytes.length) {
    const n = await file.read(bytes.subarray(at));
    if (n === null) break;
    at += n;
  }
  if (at !== bytes.length) throw new Error(`${path} changed size while being read`);
  return bytes;
}
