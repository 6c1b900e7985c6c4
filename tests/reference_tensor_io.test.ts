import assert from "node:assert/strict";
import {
  decodeTensor,
  encodeTensor,
  fromBfloat16Bits,
  readTensor,
  toBfloat16Bits,
  writeTensor,
} from "../src/reference/tensor_io.ts";

Deno.test("bfloat16 rounds to nearest even and keeps NaN, Inf and signs", () => {
  assert.equal(toBfloat16Bits(1), 0x3f80);
  assert.equal(toBfloat16Bits(-2), 0xc000);
  assert.equal(toBfloat16Bits(-0), 0x8000);
  assert.equal(toBfloat16Bits(Infinity), 0x7f80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even pattern (1).
  assert.equal(toBfloat16Bits(1 + 2 ** -8), 0x3f80);
  // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to the even one.
  assert.equal(toBfloat16Bits(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(toBfloat16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81); // just above the tie
  assert.ok(Number.isNaN(fromBfloat16Bits(toBfloat16Bits(NaN))));
  assert.equal(fromBfloat16Bits(0x3f80), 1);
});

Deno.test("every dtype round-trips through encode/decode", () => {
  const values = [0, 1, -1.5, 0.25, 100];
  for (const dtype of ["float32", "float16", "bfloat16"] as const) {
    assert.deepEqual([...decodeTensor(encodeTensor(values, dtype), dtype)], values, dtype);
  }
  assert.deepEqual([...decodeTensor(encodeTensor([-3, 0, 7], "int32"), "int32")], [-3, 0, 7]);
  assert.deepEqual([...decodeTensor(encodeTensor([0, 2 ** 32 - 1], "uint32"), "uint32")], [
    0,
    2 ** 32 - 1,
  ]);
  assert.equal(encodeTensor(values, "float16").byteLength, 10);
  // Values are rounded to the dtype: 0.1 is stored as the nearest float16.
  assert.equal(decodeTensor(encodeTensor([0.1], "float16"), "float16")[0], Math.f16round(0.1));
});

Deno.test("integers out of range are refused, not wrapped", () => {
  assert.throws(() => encodeTensor([2 ** 31], "int32"), RangeError);
  assert.throws(() => encodeTensor([-1], "uint32"), RangeError);
  assert.throws(() => encodeTensor([1.5], "int32"), RangeError);
});

Deno.test("decode copes with unaligned bytes and refuses partial elements", () => {
  const bytes = new Uint8Array(9);
  bytes.set(encodeTensor([1.5, -2], "float32"), 1);
  assert.deepEqual([...decodeTensor(bytes.subarray(1), "float32")], [1.5, -2]);
  assert.throws(() => decodeTensor(new Uint8Array(6), "float32"), RangeError);
});

Deno.test("files: little-endian raw bytes, size checked against the shape", async () => {
  const dir = await Deno.makeTempDir({ prefix: "metalbench-tio-" });
  try {
    const path = `${dir}/t.bin`;
    await writeTensor(path, [1, 2, 3, 4, 5, 6], "int32");
    assert.deepEqual([...await Deno.readFile(path)].slice(0, 8), [1, 0, 0, 0, 2, 0, 0, 0]);
    assert.deepEqual([...await readTensor(path, "int32", [2, 3])], [1, 2, 3, 4, 5, 6]);
    await assert.rejects(readTensor(path, "int32", [2, 2]), /has 24 bytes; int32\[2,2\] needs 16/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
