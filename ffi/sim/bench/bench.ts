/**
 * Simulator throughput: simulated threads per second (threads of the grid /
 * the simulator's execution time, best of several samples) for relu, softmax
 * and 256^3 matmuls, through the bridge as the harness runs them.
 *
 *   make -C ffi sim && deno run -A ffi/sim/bench/bench.ts [workers=N] [only=name] [lib=path]
 *
 * lib= measures another build of the simulator (e.g. an older commit's
 * ffi/build/libsim_bridge.so), with its own kernel cache next to it.
 */
import { Bridge, type Pipeline } from "../../../src/backend/bridge.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const args = Object.fromEntries(Deno.args.map((a) => a.split("=", 2)));
const lib = args.lib ?? `${ROOT}ffi/build/libsim_bridge.so`;
const sim = Bridge.open(lib, {
  cache_dir: `${lib.slice(0, lib.lastIndexOf("/"))}/sim-bench-cache`,
  workers: args.workers,
});

interface Case {
  name: string;
  file: string;
  fn: string;
  threads: number;
  setup(p: Pipeline): { cmd: ReturnType<Bridge["command"]>; free(): void };
}

function f32buf(n: number, f: (i: number) => number) {
  const b = sim.buffer(n * 4);
  b.write(new Uint8Array(Float32Array.from({ length: n }, (_, i) => f(i)).buffer));
  return b;
}
const u32 = (...v: number[]) => new Uint8Array(new Uint32Array(v).buffer);

function elementwise(p: Pipeline, n: number) {
  const x = f32buf(n, (i) => Math.sin(i)), y = sim.buffer(n * 4);
  const cmd = sim.command();
  cmd.setPipeline(p);
  cmd.setBuffer(0, x);
  cmd.setBuffer(1, y);
  cmd.setBytes(2, u32(n));
  cmd.dispatch("threads", [n / 4, 1, 1], [256, 1, 1]);
  return { cmd, free: () => [x, y, cmd].forEach((h) => h.free()) };
}

function rowwise(p: Pipeline, rows: number, cols: number) {
  const x = f32buf(rows * cols, (i) => Math.sin(i) * 4), y = sim.buffer(rows * cols * 4);
  const cmd = sim.command();
  cmd.setPipeline(p);
  cmd.setBuffer(0, x);
  cmd.setBuffer(1, y);
  cmd.setBytes(2, u32(cols));
  cmd.dispatch("threadgroups", [rows, 1, 1], [256, 1, 1]);
  return { cmd, free: () => [x, y, cmd].forEach((h) => h.free()) };
}

function matmul(p: Pipeline, n: number, tile: number, threads: number) {
  const a = f32buf(n * n, (i) => Math.sin(i)), b = f32buf(n * n, (i) => Math.cos(i));
  const c = sim.buffer(n * n * 4);
  const cmd = sim.command();
  cmd.setPipeline(p);
  cmd.setBuffer(0, a);
  cmd.setBuffer(1, b);
  cmd.setBuffer(2, c);
  cmd.setBytes(3, u32(n));
  cmd.setBytes(4, u32(n));
  cmd.setBytes(5, u32(n));
  cmd.dispatch("threadgroups", [n / tile, n / tile, 1], [threads, 1, 1]);
  return { cmd, free: () => [a, b, c, cmd].forEach((h) => h.free()) };
}

const cases: Case[] = [
  {
    name: "relu (2^22 floats, float4 per thread)",
    file: "kernels/common/relu.metal",
    fn: "relu_f32",
    threads: 1 << 20,
    setup: (p) => elementwise(p, 1 << 22),
  },
  {
    name: "softmax (1024 x 1024, 256 threads per row)",
    file: "kernels/common/softmax.metal",
    fn: "softmax_f32",
    threads: 1024 * 256,
    setup: (p) => rowwise(p, 1024, 1024),
  },
  {
    name: "matmul 256^3, threadgroup-tiled (sqr_mm)",
    file: "kernels/common/sqr_mm.metal",
    fn: "sqr_mm_f32",
    threads: 16 * 256,
    setup: (p) => matmul(p, 256, 64, 256),
  },
  {
    name: "matmul 256^3, simdgroup_matrix",
    file: "ffi/sim/bench/simdgroup_mm.metal",
    fn: "simdgroup_mm_f32",
    threads: 16 * 128,
    setup: (p) => matmul(p, 256, 64, 128),
  },
];

for (const c of cases) {
  if (args.only && !c.name.startsWith(args.only)) continue;
  let p: Pipeline;
  try {
    p = await sim.compile(Deno.readTextFileSync(ROOT + c.file), c.fn, {
      source_name: c.file.split("/").pop(),
    });
  } catch (e) {
    console.log(`${c.name}: n/a (${(e as Error).message.split("\n")[0]})`);
    continue;
  }
  const { cmd, free } = c.setup(p);
  await cmd.run(1, 1); // warm-up
  const { deviceNs } = await cmd.run(Number(args.samples ?? 7), 1);
  const best = Math.min(...deviceNs);
  console.log(
    `${c.name}: ${(c.threads / (best / 1e9) / 1e6).toFixed(2)} M threads/s ` +
      `(${(best / 1e6).toFixed(2)} ms per dispatch, ${c.threads} threads)`,
  );
  free();
  p.free();
}
sim.close();
