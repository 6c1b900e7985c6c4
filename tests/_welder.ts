/**
 * Test helpers for the Welder: PyTorch made ready through `setup --torch`'s
 * own code path (or the reason it cannot be), the replies a model would
 * give for the KernelBench fixtures (right ones and wrong ones), a stub
 * that answers by stage and problem, and a snapshot of a workspace's files
 * outside .agent-steel/ to prove a failed weld changed nothing.
 */
import { join, relative } from "node:path";
import { ensureTorch } from "../src/reference/python_env.ts";
import type { Recorded, StubReply } from "./_llm_stub.ts";

export const FIXTURES = new URL("./fixtures/kernelbench/", import.meta.url).pathname;

/** null when PyTorch imports (installed now if it was not), else why it cannot be had. */
export const TORCH_MISSING: string | null = await ensureTorch({ install: true, log: () => {} })
  .then(() => null, (e: Error) => e.message);
if (TORCH_MISSING) {
  console.warn(`welder tests skipped: PyTorch cannot be installed here (${TORCH_MISSING})`);
}

const HEAD = "#include <metal_stdlib>\nusing namespace metal;\n";
const EACH = "for (uint i = gid * 4; i < min(gid * 4 + 4, n); ++i)";

export function fence(lang: string, text: string): string {
  return `\`\`\`${lang}\n${text.replace(/\n$/, "")}\n\`\`\``;
}

/** A stage-1 reply: the MLX reference and the registry entry. */
export function referenceReply(python: string, entry: unknown): string {
  return `Here they are.\n\n${fence("python", python)}\n\n${
    fence("json", JSON.stringify(entry, null, 1))
  }\n`;
}

export function kernelReply(source: string): string {
  return `The kernel:\n\n${fence("metal", source)}\n`;
}

const MLX_HEAD = "import mlx.core as mx\nimport mlx.nn as nn\n\n\n";

/** What a model would write for each fixture: the MLX reference, the entry, the kernel. */
export const SWISH = {
  python:
    `${MLX_HEAD}class Model(nn.Module):\n    def __call__(self, x):\n        return x * mx.sigmoid(1.702 * x)\n`,
  /** Forgets the 1.702: disagrees with PyTorch. */
  wrongPython:
    `${MLX_HEAD}class Model(nn.Module):\n    def __call__(self, x):\n        return x * mx.sigmoid(x)\n`,
  entry: (fn = "swish_f32") => ({
    template: "elementwise",
    description: "y = x * sigmoid(1.702 x)",
    function: fn,
    sizes: { bench: { M: 8, N: 1024 }, test: { M: 3, N: 1001 } },
    flopsPerElement: 4,
  }),
  kernel: (fn = "swish_f32") =>
    `${HEAD}// y = x * sigmoid(1.702 x), one thread per 4 elements.
kernel void ${fn}(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                      constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  ${EACH} {
    const float v = x[i];
    y[i] = v * (1.0f / (1.0f + exp(-1.702f * v)));
  }
}
`,
  /** Compiles and runs; computes x * sigmoid(x). */
  wrongKernel: (fn = "swish_f32") =>
    `${HEAD}kernel void ${fn}(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                      constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  ${EACH} { const float v = x[i]; y[i] = v * (1.0f / (1.0f + exp(-v))); }
}
`,
};

export const BIAS_RELU = {
  python:
    `${MLX_HEAD}class Model(nn.Module):\n    def __call__(self, x, bias):\n        return mx.maximum(x + bias, 0)\n`,
  entry: {
    template: "elementwise",
    description: "y = relu(x + bias), bias per column",
    function: "bias_relu_f32",
    inputs: ["x", { name: "bias", shape: ["N"] }],
    sizes: { bench: { M: 8, N: 1000 }, test: { M: 3, N: 1000 } },
    scalars: [{ dtype: "uint32", value: "N" }],
    flopsPerElement: 2,
  },
  kernel: `${HEAD}// y = relu(x + bias[column]); select keeps NaN as MLX's maximum does.
kernel void bias_relu_f32(device const float* x [[buffer(0)]], device const float* bias [[buffer(1)]],
                          device float* y [[buffer(2)]], constant uint& n [[buffer(3)]],
                          constant uint& cols [[buffer(4)]], uint gid [[thread_position_in_grid]]) {
  ${EACH} {
    const float s = x[i] + bias[i % cols];
    y[i] = select(s, 0.0f, s < 0.0f);
  }
}
`,
};

/** Which stage a request is for, and which problem, from the prompt. */
export function stageOf(req: Recorded): { stage: 1 | 2 | 0; name: string } {
  const first = req.messages[0]?.content ?? "";
  const m = /Stage ([12]) of welding problem `([A-Za-z0-9_]+)`/.exec(first);
  return m ? { stage: Number(m[1]) as 1 | 2, name: m[2] } : { stage: 0, name: "" };
}

/**
 * A responder for the stub: `script[name][stage]` is the list of replies
 * for that stage, one per attempt (the last repeats).
 */
export function byStage(script: Record<string, { 1?: string[]; 2?: string[] }>) {
  return (req: Recorded): StubReply => {
    const { stage, name } = stageOf(req);
    const replies = stage ? script[name]?.[stage] : undefined;
    if (!replies?.length) {
      return { status: 400, body: `{"error":{"message":"unscripted ${name} ${stage}"}}` };
    }
    // The conversation grows by a reply and its feedback per retry.
    return replies[Math.min((req.messages.length - 1) / 2, replies.length - 1)];
  };
}

/** Every file under `root` outside .agent-steel/, with its bytes. */
export async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      const rel = relative(root, path);
      if (rel === ".agent-steel") continue;
      if (e.isDirectory) await walk(path);
      else out.set(rel, new TextDecoder().decode(await Deno.readFile(path)));
    }
  };
  await walk(root);
  return out;
}

/** Args of a CLI welder/import run against the stub at `url`. */
export function llmArgs(url: string): string[] {
  return [
    "--backend=sim",
    "--provider",
    "openai-compatible",
    "--base-url",
    `${url}/v1`,
    "--model",
    "stub-model",
  ];
}
