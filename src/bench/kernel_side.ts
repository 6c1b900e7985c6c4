/**
 * The kernel side of one benchmark: compile a problem's dispatches, bind
 * its tensors to device buffers, and run the recorded command.
 */
import { BridgeError, type Command, type DeviceBuffer, type Pipeline } from "../backend/bridge.ts";
import type { Backend } from "../backend/select.ts";
import type {
  FunctionConstantValue,
  ResolvedDispatch,
  ResolvedTensor,
  SizedProblem,
} from "../registry/problem.ts";
import { PAIRINGS, ROTATION_SETS } from "./rotation.ts";
import type { KernelSource } from "../registry/load.ts";
import type { ScalarDtype } from "../registry/schema.ts";
import { basename, dirname } from "node:path";

export class KernelSetupError extends Error {
  override name = "KernelSetupError";
  constructor(readonly kind: "compile-error" | "invalid-dispatch", message: string) {
    super(message);
  }
}

function scalarBytes(dtype: ScalarDtype, value: number): Uint8Array<ArrayBuffer> {
  switch (dtype) {
    case "uint32":
      return new Uint8Array(Uint32Array.of(value).buffer);
    case "int32":
      return new Uint8Array(Int32Array.of(value).buffer);
    case "float32":
      return new Uint8Array(Float32Array.of(value).buffer);
    case "float16":
      return new Uint8Array(Float16Array.of(value).buffer);
  }
}

/** The bridge's function_constants option: "name=value,..."; a vector's components by spaces. */
export function constantsOption(constants: Record<string, FunctionConstantValue>): string {
  return Object.entries(constants).map(([k, v]) => `${k}=${[v].flat().join(" ")}`).join(",");
}

/** One pipeline per function and set of function constants: "k" or "k [scale=2]". */
function pipelineKey(d: ResolvedDispatch): string {
  const c = constantsOption(d.constants);
  return c ? `${d.function} [${c}]` : d.function;
}

/** 0xFF bytes: NaN in every float dtype, so unwritten outputs never pass. */
export function poison(length: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(length).fill(0xff);
}

/** One set of device buffers: a tensor name → its buffer. */
export type BufferSet = Map<string, DeviceBuffer>;

export interface PreparedKernel {
  pipelines: Map<string, Pipeline>;
  /** ROTATION_SETS input sets. */
  inputSets: BufferSet[];
  /** ROTATION_SETS output sets, each with its own intermediates. */
  outputSets: BufferSet[];
  /** One launch per pairing of PAIRINGS; launch 0 is input set 0 → output set 0. */
  command: Command;
  compileMs: number;
  free(): void;
}

/** Bytes of one buffer: at least 16, so tiny outputs still have poisoned padding to check. */
export const bufferBytes = (t: ResolvedTensor) => Math.max(t.bytes, 16);

/** Device bytes a prepared kernel allocates (all rotation sets). */
export function deviceBytes(problem: SizedProblem): number {
  const sum = (ts: ResolvedTensor[]) => ts.reduce((a, t) => a + bufferBytes(t), 0);
  return ROTATION_SETS * (sum(problem.inputs) + sum(problem.outputs) + sum(problem.intermediates));
}

export async function prepareKernel(
  backend: Backend,
  problem: SizedProblem,
  source: KernelSource,
): Promise<PreparedKernel> {
  const pipelines = new Map<string, Pipeline>();
  const sets: BufferSet[] = [];
  const freeAll = () => {
    for (const p of pipelines.values()) p.free();
    for (const set of sets) for (const b of set.values()) b.free();
  };
  const started = performance.now();
  try {
    for (const d of problem.dispatches) {
      const key = pipelineKey(d);
      if (pipelines.has(key)) continue;
      try {
        pipelines.set(
          key,
          await backend.bridge.compile(source.text, d.function, {
            source_name: basename(source.path),
            include_dir: dirname(source.path),
            // Only Metal can load an offline library; the simulator compiles the source.
            metallib: backend.kind === "metal" ? source.metallib ?? undefined : undefined,
            function_constants: constantsOption(d.constants) || undefined,
            fast_math: problem.fastMath, // explicit either way: Metal's own default is on
          }),
        );
      } catch (e) {
        if (e instanceof BridgeError && (e.status === "compile" || e.status === "argument")) {
          throw new KernelSetupError("compile-error", e.message);
        }
        throw e;
      }
    }
    const compileMs = performance.now() - started;

    const allocate = (tensors: ResolvedTensor[]): BufferSet => {
      const set: BufferSet = new Map();
      sets.push(set);
      for (const t of tensors) set.set(t.name, backend.bridge.buffer(bufferBytes(t)));
      return set;
    };
    const inputSets = Array.from({ length: ROTATION_SETS }, () => allocate(problem.inputs));
    const outputSets = Array.from(
      { length: ROTATION_SETS },
      () => allocate([...problem.outputs, ...problem.intermediates]),
    );

    const command = backend.bridge.command();
    try {
      for (const pairing of PAIRINGS) {
        const bound = (name: string) =>
          inputSets[pairing.input].get(name) ?? outputSets[pairing.output].get(name)!;
        recordLaunch(command, problem, pipelines, bound);
        command.endLaunch();
      }
    } catch (e) {
      command.free();
      throw e;
    }
    return {
      pipelines,
      inputSets,
      outputSets,
      command,
      compileMs,
      free() {
        command.free();
        freeAll();
      },
    };
  } catch (e) {
    freeAll();
    throw e;
  }
}

/** Record one launch: every dispatch of the problem, bound to `bound`'s buffers. */
function recordLaunch(
  command: Command,
  problem: SizedProblem,
  pipelines: Map<string, Pipeline>,
  bound: (tensor: string) => DeviceBuffer,
) {
  for (const d of problem.dispatches) {
    const pipeline = pipelines.get(pipelineKey(d))!;
    const max = pipeline.facts().maxTotalThreadsPerThreadgroup;
    const threads = d.threadgroup[0] * d.threadgroup[1] * d.threadgroup[2];
    if (threads > max) {
      throw new KernelSetupError(
        "invalid-dispatch",
        `${d.function}: threadgroup of ${threads} threads exceeds the pipeline's limit of ${max}`,
      );
    }
    command.setPipeline(pipeline);
    for (const b of d.buffers) command.setBuffer(b.index, bound(b.tensor));
    for (const s of d.scalars) command.setBytes(s.index, scalarBytes(s.dtype, s.value));
    for (const m of d.threadgroupMemory) command.setThreadgroupMemory(m.index, m.bytes);
    command.dispatch(d.mode, d.grid, d.threadgroup);
  }
}
