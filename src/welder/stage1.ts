/**
 * Stage 1: the MLX reference and the registry entry, written by the model
 * and proved against PyTorch. An entry must validate (the registry's zod
 * schema, every size resolved), describe the PyTorch problem (its inputs
 * and parameters, in order, with get_inputs()'s shapes at the bench size),
 * and the MLX reference must match PyTorch on the same input files: several
 * seeds, then every edge class the entry does not opt out of. Both run
 * sandboxed; the MLX one in a fresh worker per attempt (it is untrusted too).
 */
import { join } from "node:path";
import { compare, passes, toleranceFor } from "../bench/compare.ts";
import { EDGE_DESCRIPTIONS, edgeClasses, makeEdgeTensor } from "../bench/edge_values.ts";
import { makeTensor } from "../bench/inputs.ts";
import { MlxError, MlxWorker, WorkerError } from "../reference/client.ts";
import { decodeTensor } from "../reference/tensor_io.ts";
import type { TensorRef } from "../reference/protocol.ts";
import { loadRegistry, type Problem, RegistryError, sized } from "../registry/load.ts";
import { ProblemError, type ResolvedTensor, type SizedProblem } from "../registry/problem.ts";
import { type Dtype, RegistryFile } from "../registry/schema.ts";
import type { Checked } from "./converse.ts";
import { oneLine } from "./failure.ts";
import type { Staging } from "./staging.ts";
import { TORCH_TO_REGISTRY } from "./stage0.ts";
import type { TorchArg, TorchFacts, TorchReference } from "./torch_reference.ts";

/** A torch parameter's name as a registry input: "conv.weight" → "conv_weight". */
export function paramName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[A-Za-z_]/.test(s) ? s : `p_${s}`;
}

/** The test size is for the CPU simulator (and both references run it 3 + 4 times). */
const MAX_TEST_BYTES = 64 * 2 ** 20;

/** Trials on fresh seeds before the edge classes. */
export const STAGE1_TRIALS = 3;

export interface Stage1Context {
  name: string;
  staging: Staging;
  facts: TorchFacts;
  torch: TorchReference;
  /** Input and output files of the comparisons (both workers may read it). */
  workDir: string;
  seed: number;
  referenceTimeoutMs: number;
}

export interface Stage1Value {
  problem: Problem;
  python: string;
  entry: unknown;
  /** What was compared, for the AttemptDB. */
  checked: string;
}

const reject = (reason: string, verdict: "rejected" | "incorrect" | "fault" = "rejected") => ({
  ok: false as const,
  reason: oneLine(reason),
  feedback: reason,
  verdict,
});

/** Check one stage-1 reply: write it into staging, validate it, run it against PyTorch. */
export async function checkReference(
  c: Stage1Context,
  python: string,
  entry: unknown,
): Promise<Checked<Stage1Value>> {
  const file = RegistryFile.safeParse({ set: c.staging.set, problems: { [c.name]: entry } });
  if (!file.success) {
    const issue = file.error.issues[0];
    const at = issue.path.slice(2).join(".");
    return reject(`the registry entry is invalid: ${at ? `${at}: ` : ""}${issue.message}`);
  }
  await c.staging.writeReference(python);
  await c.staging.writeRegistry({ set: c.staging.set, problems: { [c.name]: entry } });
  let problem: Problem;
  try {
    problem = loadRegistry(c.staging.workspace).problems.get(c.name)!;
  } catch (e) {
    if (e instanceof RegistryError || e instanceof ProblemError) {
      return reject(`the registry entry does not resolve: ${e.message}`);
    }
    throw e;
  }
  const shapeProblem = describesTorch(problem, c.facts);
  if (shapeProblem) return reject(shapeProblem);
  const sp = sized(problem, "test");
  const bytes = [...sp.inputs, ...sp.outputs].reduce((n, t) => n + t.bytes, 0);
  if (bytes > MAX_TEST_BYTES) {
    return reject(
      `the test size needs ${
        (bytes / 2 ** 20).toFixed(0)
      } MiB of inputs and outputs; keep it under ${
        MAX_TEST_BYTES / 2 ** 20
      } MiB: it is what the CPU simulator runs`,
    );
  }
  const mismatch = await compareWithTorch(c, problem, sp);
  if (mismatch) return mismatch;
  const edges = edgeClasses(sp);
  return {
    ok: true,
    verdict: "kept",
    reason:
      `the MLX reference matches PyTorch on ${STAGE1_TRIALS} seeds and ${edges.length} edge classes${
        edges.length ? ` (${edges.join(", ")})` : ""
      } at the test size`,
    value: { problem, python, entry, checked: "" },
  };
}

const shapeText = (s: readonly number[]) => `[${s.join(", ")}]`;
const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Why the entry does not describe the PyTorch problem, or null. */
export function describesTorch(problem: Problem, f: TorchFacts): string | null {
  const bench = sized(problem, "bench");
  const test = sized(problem, "test");
  const args = f.inputs.flatMap((a, i) => (a.kind === "tensor" ? [{ ...a, i }] : []));
  const want = args.length + f.params.length;
  const names = bench.inputs.map((t) => t.name);
  if (bench.inputs.length !== want) {
    return `the entry has ${bench.inputs.length} input(s) (${
      names.join(", ")
    }); it needs ${want}: the ${args.length} forward tensor(s) of get_inputs() in order${
      f.params.length
        ? `, then the model's parameters and buffers ${
          f.params.map((p) => paramName(p.name)).join(", ")
        }`
        : ""
    }`;
  }
  for (const [k, a] of args.entries()) {
    const t = bench.inputs[k];
    if (t.dtype !== TORCH_TO_REGISTRY[a.dtype]) {
      return `input ${k} '${t.name}' is ${t.dtype}; forward argument ${a.i} is torch ${a.dtype}, so ${
        TORCH_TO_REGISTRY[a.dtype]
      }`;
    }
    if (!sameShape(t.shape, a.shape)) {
      return `input ${k} '${t.name}' is ${
        shapeText(t.shape)
      } at the bench size; get_inputs() gives ${
        shapeText(a.shape)
      }: sizes.bench must be get_inputs()'s sizes`;
    }
  }
  for (const p of f.params) {
    const n = paramName(p.name);
    const i = names.indexOf(n);
    if (i < args.length) {
      return `no input '${n}' after the forward tensors for the model's ${p.name} ${
        shapeText(p.shape)
      }`;
    }
    for (const sp of [bench, test]) {
      const t = sp.inputs[i];
      if (!sameShape(t.shape, p.shape)) {
        return `input '${n}' is ${
          shapeText(t.shape)
        } at the ${sp.size} size; the model's ${p.name} is ${
          shapeText(p.shape)
        } at every size (the model is built once, by get_init_inputs())`;
      }
      if (t.dtype !== TORCH_TO_REGISTRY[p.dtype]) {
        return `input '${n}' is ${t.dtype}; the model's ${p.name} is torch ${p.dtype}`;
      }
    }
  }
  if (bench.outputs.length !== f.outputs.length) {
    return `the entry has ${bench.outputs.length} output(s); the model returns ${f.outputs.length}`;
  }
  for (const [k, o] of f.outputs.entries()) {
    const t = bench.outputs[k];
    const shape = o.shape.length === 0 ? [1] : o.shape;
    if (t.dtype !== TORCH_TO_REGISTRY[o.dtype]) {
      return `output ${k} '${t.name}' is ${t.dtype}; the model's is torch ${o.dtype}, so ${
        TORCH_TO_REGISTRY[o.dtype]
      }`;
    }
    if (!sameShape(t.shape, shape)) {
      return `output ${k} '${t.name}' is ${
        shapeText(t.shape)
      } at the bench size; the model returns ${shapeText(shape)}`;
    }
  }
  return null;
}

interface InputSet {
  label: string;
  files: Map<string, string>;
  bytes: Map<string, Uint8Array>;
}

async function writeSet(
  dir: string,
  sp: SizedProblem,
  label: string,
  make: (t: ResolvedTensor) => Uint8Array,
): Promise<InputSet> {
  const set: InputSet = { label, files: new Map(), bytes: new Map() };
  for (const t of sp.inputs) {
    const path = join(dir, `${label.replace(/\W/g, "_")}_${t.name}.bin`);
    const bytes = make(t);
    await Deno.writeFile(path, bytes);
    set.files.set(t.name, path);
    set.bytes.set(t.name, bytes);
  }
  return set;
}

const refOf = (set: InputSet, t: ResolvedTensor): TensorRef => ({
  path: set.files.get(t.name)!,
  dtype: t.dtype,
  shape: t.shape,
});

/** Run both references on every set and compare; a failed check, or null when all match. */
async function compareWithTorch(c: Stage1Context, problem: Problem, sp: SizedProblem) {
  const sets: InputSet[] = [];
  for (let k = 0; k < STAGE1_TRIALS; k++) {
    sets.push(
      await writeSet(c.workDir, sp, `seed ${c.seed + k}`, (t) => makeTensor(t, c.seed + k)),
    );
  }
  for (const cls of edgeClasses(sp)) {
    sets.push(await writeSet(c.workDir, sp, `edge ${cls}`, (t) => makeEdgeTensor(t, c.seed, cls)));
  }
  const out = (set: InputSet, side: string, j: number) =>
    join(c.workDir, `${set.label.replace(/\W/g, "_")}_${side}_${j}.bin`);

  // The MLX reference: a fresh sandboxed worker that reads only the staged reference and the inputs.
  let mlx: MlxWorker | null = null;
  try {
    mlx = await MlxWorker.start({
      readable: [c.staging.referenceDir, c.workDir],
      timeoutMs: c.referenceTimeoutMs,
    });
    await mlx.load(c.name, problem.referencePath, sp.init);
    await mlx.runs(
      c.name,
      sets.map((set) => ({
        inputs: sp.inputs.map((t) => refOf(set, t)),
        outputs: sp.outputs.map((t, j) => ({
          path: out(set, "mlx", j),
          name: t.name,
          dtype: t.dtype,
          shape: t.shape,
        })),
      })),
    );
  } catch (e) {
    if (e instanceof MlxError || e instanceof WorkerError) {
      const tb = e instanceof MlxError && e.traceback
        ? `\n${e.traceback.split("\n").slice(-8).join("\n")}`
        : "";
      return reject(`the MLX reference failed: ${e.message}${tb}`, "fault");
    }
    throw e;
  } finally {
    await mlx?.close({ now: true });
  }

  const tensorArgs = c.facts.inputs.filter((a) => a.kind === "tensor").length;
  for (const set of sets) {
    let k = 0;
    const args: TorchArg[] = c.facts.inputs.map((a) =>
      a.kind === "tensor"
        ? { ...refOf(set, sp.inputs[k++]), torchDtype: a.dtype }
        : { value: a.value }
    );
    const params = Object.fromEntries(c.facts.params.map((p) => {
      const t = sp.inputs.find((x, i) => i >= tensorArgs && x.name === paramName(p.name))!;
      return [p.name, refOf(set, t)];
    }));
    let written: { dtype: string; shape: number[] }[];
    try {
      written = await c.torch.run(args, params, sp.outputs.map((_, j) => out(set, "torch", j)));
    } catch (e) {
      if (e instanceof MlxError || e instanceof WorkerError) {
        // The inputs are the entry's: PyTorch refusing them is the entry's fault.
        return reject(`PyTorch could not run the entry's inputs (${set.label}): ${e.message}`);
      }
      throw e;
    }
    for (const [j, t] of sp.outputs.entries()) {
      const mine = decodeTensor(await Deno.readFile(out(set, "mlx", j)), t.dtype);
      const theirs = decodeTensor(
        await Deno.readFile(out(set, "torch", j)),
        written[j].dtype as Dtype,
      );
      if (mine.length !== theirs.length) {
        return reject(
          `${set.label}: output '${t.name}' has ${mine.length} elements; PyTorch's has ${theirs.length} (${
            shapeText(written[j].shape)
          })`,
          "incorrect",
        );
      }
      const cmp = compare(mine, theirs, toleranceFor(sp, t, set.bytes));
      if (!passes(cmp)) {
        const v = cmp.firstFailureValues;
        const edge = set.label.startsWith("edge ")
          ? ` (${EDGE_DESCRIPTIONS[set.label.slice(5) as keyof typeof EDGE_DESCRIPTIONS]})`
          : "";
        return reject(
          `${set.label}${edge}: output '${t.name}' differs from PyTorch in ${
            cmp.elements - cmp.within
          } of ${cmp.elements} elements; first at index ${cmp.firstFailure}: MLX ${v?.kernel}, PyTorch ${v?.reference}${
            v?.bound !== undefined ? ` (allowed ±${v.bound.toPrecision(3)})` : ""
          }; max abs error ${cmp.maxAbsError.toPrecision(3)}`,
          "incorrect",
        );
      }
    }
  }
  return null;
}
