/**
 * Stage 0: understand the PyTorch reference. Load it in the sandboxed
 * worker, seeded; run get_inputs() and the model; record the shapes, dtypes
 * and init arguments. A problem whose output is the same for every seed, or
 * does not change when one input alone is redrawn, is degenerate: a kernel
 * for it would measure nothing worth knowing, so it is reported and skipped.
 */
import { MlxError, WorkerError } from "../reference/client.ts";
import type { Probe, TorchFacts, TorchReference } from "./torch_reference.ts";
import { oneLine, WeldFailure } from "./failure.ts";

/** torch dtypes a registry can carry: float dtypes as they are, integers and bools as int32. */
export const TORCH_TO_REGISTRY: Record<string, string> = {
  float32: "float32",
  float16: "float16",
  bfloat16: "bfloat16",
  float64: "float32",
  int32: "int32",
  int64: "int32",
  int16: "int32",
  int8: "int32",
  uint8: "int32",
  bool: "int32",
};

export interface Understood {
  facts: TorchFacts;
  probe: Probe;
}

/** Seeds of the degeneracy probe: three draws, each input redrawn alone in each. */
const PROBE_SEEDS = 3;

export async function understand(
  torch: TorchReference,
  path: string,
  seed: number,
): Promise<Understood> {
  let facts: TorchFacts;
  let probe: Probe;
  try {
    facts = await torch.load(path, seed);
    probe = await torch.probe(Array.from({ length: PROBE_SEEDS }, (_, i) => seed + i));
  } catch (e) {
    if (e instanceof MlxError || e instanceof WorkerError) {
      throw new WeldFailure(0, `the reference failed: ${oneLine(e.message)}`);
    }
    throw e;
  }
  const tensors = facts.inputs.filter((a) => a.kind === "tensor");
  if (tensors.length === 0) throw new WeldFailure(0, "get_inputs() returns no tensor");
  for (const [i, a] of facts.inputs.entries()) {
    if (a.kind === "tensor" && !(a.dtype in TORCH_TO_REGISTRY)) {
      throw new WeldFailure(0, `input ${i} is ${a.dtype}, which no kernel input can carry`);
    }
  }
  for (const [i, o] of facts.outputs.entries()) {
    if (!(o.dtype in TORCH_TO_REGISTRY)) {
      throw new WeldFailure(0, `output ${i} is ${o.dtype}, which no kernel output can carry`);
    }
  }
  if (probe.constant) {
    throw new WeldFailure(
      0,
      `the output is the same for ${PROBE_SEEDS} seeds (a constant)`,
      "degenerate",
    );
  }
  if (probe.independent.length) {
    const which = probe.independent.map((i) => `input ${i}`).join(", ");
    throw new WeldFailure(
      0,
      `the output does not change when ${which} alone is redrawn (${PROBE_SEEDS} seeds)`,
      "degenerate",
    );
  }
  return { facts, probe };
}

const show = (dtype: string, shape: readonly number[]) => `${dtype}[${shape.join(", ")}]`;

/** The facts as the stage-1 prompt shows them. */
export function describeFacts(f: TorchFacts, paramName: (n: string) => string): string {
  const lines = [
    `get_init_inputs(): ${JSON.stringify(f.init)}`,
    "Forward arguments, from get_inputs(), in order:",
  ];
  for (const [i, a] of f.inputs.entries()) {
    lines.push(
      a.kind === "tensor"
        ? `  ${i}: tensor ${show(a.dtype, a.shape)}${
          TORCH_TO_REGISTRY[a.dtype] !== a.dtype
            ? ` (registry dtype ${TORCH_TO_REGISTRY[a.dtype]})`
            : ""
        }`
        : `  ${i}: the value ${JSON.stringify(a.value)} (not a tensor: put it in "init")`,
    );
  }
  if (f.params.length) {
    lines.push(
      "Parameters and buffers of the model (registry inputs after the forward tensors, named so):",
    );
    for (const p of f.params) {
      lines.push(`  ${p.name} → "${paramName(p.name)}": ${show(p.dtype, p.shape)}`);
    }
  }
  lines.push("Outputs:");
  for (const [i, o] of f.outputs.entries()) lines.push(`  ${i}: ${show(o.dtype, o.shape)}`);
  if (f.doc) lines.push(`Model's docstring: ${oneLine(f.doc, 500)}`);
  return lines.join("\n");
}
