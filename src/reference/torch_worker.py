"""PyTorch references in the MLX worker's sandbox: the Welder's stage 0 and 1.

Not a program of its own: src/welder/torch_reference.ts passes this source
to worker.py as an extension (config "extensions"), which runs it after the
sandbox is on and before any reference, in the worker's globals (Fail,
field, OPS, describe, read_input's conventions). Reference code is untrusted
(KernelBench files, or a user's); it runs only here.

A reference is a KernelBench problem file: class Model(nn.Module) with
forward, get_inputs() and get_init_inputs(); the model is Model(*init).

Ops (same envelope and failure kinds as worker.py):
  torch_load   {problem, path, seed} -> {init, params: [{name, dtype, shape}],
               doc, inputs: [spec], outputs: [{dtype, shape}]}
               Seeds torch, builds Model(*get_init_inputs()), draws get_inputs()
               once and runs it. A spec is {kind: "tensor", dtype, shape} or
               {kind: "value", value}.
  torch_probe  {problem, seeds: [int]} -> {constant, independent: [input index],
               nonfinite}
               Degenerate problems: the output is the same for every seed
               (constant), or unchanged when one input alone is redrawn
               (independent of it).
  torch_run    {problem, args: [tensor ref | {value}], params: {name: tensor ref},
               outputs: [{path}]} -> {outputs: [{dtype, shape}]}
               Sets the named parameters and buffers from files, calls the
               model on args (a tensor ref may carry "torchDtype", e.g. int64,
               the dtype get_inputs gave), writes each output as float32 (float
               outputs) or int32 (integer and bool outputs).
"""

try:
    import torch

    torch.set_num_threads(1)  # one core is plenty at test sizes, and results do not vary
    TORCH_ERROR = None
except Exception as _e:  # reported by every torch op, with the fix
    TORCH_ERROR = "%s: %s" % (type(_e).__name__, _e)

TORCH = {}
TORCH_FILE_DTYPES = {"float32": "float32", "float16": "float16", "int32": "int32",
                     "uint32": "uint32", "bfloat16": "uint16"}


def _torch_ready():
    if TORCH_ERROR is not None:
        raise Fail("setup", "PyTorch cannot be imported (%s)" % TORCH_ERROR)


def _jsonable(v):
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else repr(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return repr(v)


def _dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def _spec(v):
    if isinstance(v, torch.Tensor):
        return {"kind": "tensor", "dtype": _dtype_name(v), "shape": list(v.shape)}
    return {"kind": "value", "value": _jsonable(v)}


def _outputs(result, path):
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, (tuple, list)) and all(isinstance(r, torch.Tensor) for r in result):
        return list(result)
    raise Fail("output", "Model returned %s; expected a tensor or a tuple of tensors"
               % type(result).__name__, file=path)


def _call(p, args):
    try:
        with torch.no_grad():
            return _outputs(p["model"](*args), p["path"])
    except Fail:
        raise
    except (Exception, SystemExit) as e:
        raise Fail("model", describe(e, p["path"]), traceback.format_exc(), p["path"])


def _draw(p, seed):
    torch.manual_seed(seed)
    try:
        return list(p["module"].get_inputs())
    except (Exception, SystemExit) as e:
        raise Fail("model", "get_inputs() raised %s" % describe(e, p["path"]),
                   traceback.format_exc(), p["path"])


def op_torch_load(req):
    _torch_ready()
    pid = field(req, "problem", str)
    path = os.path.abspath(field(req, "path", str))
    seed = field(req, "seed", int, 0, required=False)
    name = "metalbench_torch_%d" % (len(TORCH) + 1)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or not os.path.isfile(path):
        raise Fail("load", "%s: no such file" % path, file=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        for need in ("Model", "get_inputs", "get_init_inputs"):
            if not hasattr(module, need):
                raise Fail("load", "%s defines no %s (KernelBench's format: class Model, "
                           "get_inputs(), get_init_inputs())" % (path, need), file=path)
        torch.manual_seed(seed)
        init = list(module.get_init_inputs())
        model = module.Model(*init)
        if isinstance(model, torch.nn.Module):
            model.eval()
    except Fail:
        raise
    except (Exception, SystemExit) as e:
        raise Fail("load", "%s: %s" % (path, describe(e, path)), traceback.format_exc(), path)
    p = {"model": model, "module": module, "path": path}
    TORCH[pid] = p
    args = _draw(p, seed)
    outs = _call(p, args)
    named = list(model.named_parameters()) + list(model.named_buffers()) \
        if isinstance(model, torch.nn.Module) else []
    return {
        "init": [_jsonable(v) for v in init],
        "params": [{"name": n, "dtype": _dtype_name(t), "shape": list(t.shape)} for n, t in named],
        "doc": (module.Model.__doc__ or "").strip()[:2000],
        "inputs": [_spec(a) for a in args],
        "outputs": [{"dtype": _dtype_name(o), "shape": list(o.shape)} for o in outs],
    }


def _same(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    return bool(torch.allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True))


def _all_same(xs, ys):
    return len(xs) == len(ys) and all(_same(x, y) for x, y in zip(xs, ys))


def op_torch_probe(req):
    _torch_ready()
    p = TORCH.get(field(req, "problem", str))
    if p is None:
        raise Fail("protocol", "problem is not loaded")
    seeds = field(req, "seeds", list)
    runs = [(s, _draw(p, s)) for s in seeds]
    outs = [_call(p, args) for _, args in runs]
    constant = all(_all_same(outs[0], o) for o in outs[1:])
    nonfinite = any(not bool(torch.isfinite(t).all()) for o in outs for t in o
                    if t.is_floating_point())
    independent = []
    for i, a in enumerate(runs[0][1]):
        if not isinstance(a, torch.Tensor):
            continue
        unchanged = True
        for (s, args), out in zip(runs, outs):
            other = _draw(p, s + 7919 + i)[i]
            if not isinstance(other, torch.Tensor) or other.shape != a.shape:
                unchanged = False  # cannot redraw it alone: assume it matters
                break
            if torch.equal(other, args[i]):
                unchanged = False
                break
            moved = list(args)
            moved[i] = other
            if not _all_same(out, _call(p, moved)):
                unchanged = False
                break
        if unchanged:
            independent.append(i)
    return {"constant": bool(constant), "independent": independent, "nonfinite": nonfinite}


def _read_tensor(i, ref):
    t = read_input(i, ref)  # checks dtype, shape and size as the MLX worker does
    host = np.array(t.view(mx.uint16) if t.dtype == mx.bfloat16 else t)
    out = torch.from_numpy(host.copy())
    if ref.get("dtype") == "bfloat16":
        out = out.view(torch.bfloat16)
    want = ref.get("torchDtype")
    if isinstance(want, str) and want != ref.get("dtype"):
        if not hasattr(torch, want):
            raise Fail("protocol", "input %d: unknown torch dtype %r" % (i, want))
        out = out.to(getattr(torch, want))
    return out


def _write(t, path):
    if t.is_floating_point() and t.dtype != torch.float32:
        t = t.to(torch.float32)
    elif not t.is_floating_point():
        t = t.to(torch.int32)
    t.contiguous().numpy().tofile(path)  # C order; every host MetalBench runs on is little-endian
    return _dtype_name(t)


def op_torch_run(req):
    _torch_ready()
    p = TORCH.get(field(req, "problem", str))
    if p is None:
        raise Fail("protocol", "problem is not loaded")
    args = []
    for i, a in enumerate(field(req, "args", list)):
        if isinstance(a, dict) and "value" in a:
            args.append(a["value"])
        else:
            args.append(_read_tensor(i, a))
    params = field(req, "params", dict, {}, required=False)
    if params:
        state = dict(p["model"].named_parameters())
        state.update(dict(p["model"].named_buffers()))
        for name, ref in params.items():
            if name not in state:
                raise Fail("input", "the model has no parameter or buffer '%s'" % name)
            value = _read_tensor(0, ref)
            if tuple(value.shape) != tuple(state[name].shape):
                raise Fail("input", "parameter '%s' is %s; the model's is %s"
                           % (name, list(value.shape), list(state[name].shape)))
            with torch.no_grad():
                state[name].copy_(value.to(state[name].dtype))
    outs = _call(p, args)
    specs = field(req, "outputs", list)
    if len(outs) != len(specs):
        raise Fail("output", "Model returned %d output(s); %d expected" % (len(outs), len(specs)),
                   file=p["path"])
    done = []
    for i, (t, spec) in enumerate(zip(outs, specs)):
        path = spec.get("path") if isinstance(spec, dict) else None
        if not isinstance(path, str):
            raise Fail("protocol", "output %d needs 'path'" % i)
        dtype = _write(t.detach().cpu(), path)
        done.append({"dtype": dtype, "shape": list(t.shape)})
    return {"outputs": done}


OPS.update({"torch_load": op_torch_load, "torch_probe": op_torch_probe, "torch_run": op_torch_run})
