/**
 * A PyTorch reference is untrusted code (a KernelBench file from anywhere,
 * or an LLM's): stage 0 runs it in the MLX worker's sandbox. This one tries
 * to read a file outside the folders it may read, the CLI's environment,
 * the network (a server of this test on loopback), to write into the
 * workspace and /tmp, and to start a program; it reports what it got in the
 * error it raises, which the weld prints. Nothing gets through.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { agentWorkspace, finished, spawnCli } from "./_agent.ts";
import { llmArgs, snapshot, TORCH_MISSING } from "./_welder.ts";

Deno.test({
  name: "welder: an attacker's PyTorch reference is contained by the sandbox",
  ignore: TORCH_MISSING !== null,
  async fn() {
    const ws = await agentWorkspace();
    const secretDir = await Deno.makeTempDir({ prefix: "mb-secret-" });
    const refDir = await Deno.makeTempDir({ prefix: "mb-attack-" });
    const token = crypto.randomUUID();
    const envToken = crypto.randomUUID();
    await Deno.writeTextFile(join(secretDir, "secret.txt"), token);
    const outside = join(secretDir, "written.txt");
    const inWorkspace = join(ws, "registry", "evil.json");
    const touched = join(secretDir, "touched");
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let connections = 0;
    (async () => {
      for await (const c of server) {
        connections++;
        c.close();
      }
    })().catch(() => {});
    const reference = join(refDir, "attack.py");
    await Deno.writeTextFile(
      reference,
      `import os, socket
import torch
import torch.nn as nn

got = []
try:
    got.append("read:" + open(${JSON.stringify(join(secretDir, "secret.txt"))}).read())
except Exception as e:
    got.append("read-denied:" + type(e).__name__)
got.append("env:" + os.environ.get("WELDER_ATTACK_VALUE", "none") + "," + os.environ.get("HOME", "nohome"))
try:
    socket.create_connection(("127.0.0.1", ${server.addr.port}), timeout=2).sendall(b"x")
    got.append("net:connected")
except Exception as e:
    got.append("net-denied:" + type(e).__name__)
for path in (${JSON.stringify(outside)}, ${JSON.stringify(inWorkspace)}):
    try:
        open(path, "w").write("pwned")
        got.append("write:ok")
    except Exception as e:
        got.append("write-denied:" + type(e).__name__)
got.append("exec:%s" % os.system("touch " + ${JSON.stringify(touched)}))


class Model(nn.Module):
    def forward(self, x):
        raise RuntimeError("GOT " + " ".join(got))


def get_inputs():
    return [torch.randn(4, 4)]


def get_init_inputs():
    return []
`,
    );
    const before = await snapshot(ws);
    try {
      const r = await finished(spawnCli([
        "welder",
        "attack",
        "--workspace",
        ws,
        "--description",
        "an attack",
        "--reference",
        reference,
        ...llmArgs("http://127.0.0.1:9"),
      ], { WELDER_ATTACK_VALUE: envToken }));
      assert.equal(r.code, 9, r.stderr);
      const line = r.stderr.trim().split("\n").at(-1)!;
      assert.match(
        line,
        /failed at stage 0 \(the PyTorch reference\): the reference failed: RuntimeError: GOT /,
      );
      assert.match(line, /read-denied:PermissionError/);
      assert.match(line, /env:none,nohome/);
      assert.match(line, /net-denied:/);
      assert.match(line, /write-denied:PermissionError write-denied:PermissionError/);
      assert.doesNotMatch(line, /exec:0\b/);
      assert.ok(!r.stderr.includes(token) && !r.stdout.includes(token));
      assert.ok(!r.stderr.includes(envToken) && !r.stdout.includes(envToken));
      assert.equal(connections, 0);
      for (const p of [outside, inWorkspace, touched]) {
        assert.equal(await Deno.lstat(p).then(() => true, () => false), false, `${p} exists`);
      }
      assert.deepEqual(await snapshot(ws), before);
    } finally {
      server.close();
      for (const d of [ws, secretDir, refDir]) await Deno.remove(d, { recursive: true });
    }
  },
});
