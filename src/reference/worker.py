"""MetalBench MLX worker: loads MLX reference problems, runs them and times them.

One process serves many requests (the benchmark starts one per problem: see
src/bench/reference_mlx.ts), driven by src/reference/client.ts.
The TypeScript side of this protocol is src/reference/protocol.ts; keep the two
in step (PROTOCOL below and PROTOCOL_VERSION there).

Started as `python -c <this script> <config JSON>`, config
{"scratch": folder, "readable": [folders], "limitReads": bool, "off": [layers]}
("off": "namespace", "landlock" or "seccomp", left off to test each alone). Reference
code is untrusted, so before anything else (before numpy and MLX start their
threads) the worker sandboxes itself where the OS allows (Linux; see
"sandbox" below): writes only under `scratch`; reads only Python's folders,
system libraries, `readable` and scratch (unless limitReads is false); no
network; no new processes or programs; signals only to itself. hello reports
each protection and why one is missing. The client gives it a minimal
environment (src/reference/sandbox.ts).

PROTOCOL (version 2)
--------------------
JSON lines: the client writes one request per line on stdin, the worker
answers each with exactly one line on stdout, in order, carrying the same
"id". Requests are handled one at a time.

  request:  {"id": 7, "op": "<op>", ...fields}
  success:  {"id": 7, "ok": true, ...result}
  failure:  {"id": 7, "ok": false, "kind": "<kind>", "error": "<one line>",
             "traceback": "<Python traceback or ''>", "file": "<path or ''>"}

A request that is not JSON is answered with "id": null. Failure kinds:
  protocol  malformed request, unknown op, unknown problem, wrong field
  setup     mlx or numpy cannot be imported in this Python (error: the import error)
  load      the reference file cannot be imported, has no Model, or Model(**init) raised
  input     an input file is missing or its size does not match dtype and shape
  model     the model raised while building or evaluating its graph
  output    the model returned something other than arrays, or too many/few of them
  state     the op needs a state the problem is not in (cold after a call)
  internal  a bug in this worker
The worker stays alive after any failure.

Tensors never travel in JSON: they are raw files, little-endian, C order, no
header. A tensor reference is {"path", "dtype", "shape"}; dtype is one of
float32 float16 bfloat16 int32 uint32. A bfloat16 file holds the raw 16-bit
patterns (the top half of the float32 bits).

Ops:
  hello     {} -> {protocol, python, executable, mlx, numpy, device: "cpu"|"gpu",
            metal, platform, sandbox, machine, pid, clock}
            sandbox: {landlock: ABI or 0, writes, reads, network: [layers],
            processes, signals: "landlock"|"seccomp"|"", notes: [why a layer is off]}
  load      {problem, path, init?: {}, seed?: 0} -> {problem, entry: "__call__"|"forward",
            module, loadNs}. Imports the file in isolation under a unique module
            name, seeds mx.random with `seed`, constructs Model(**init) and
            evaluates its parameters. Loading an existing problem id replaces it.
  unload    {problem} -> {}
  run       {problem, inputs: [tensor], outputs: [{path}]} -> {outputs: [{dtype, shape}]}
            (output paths are in scratch: the only place the worker may write)
            Calls the model once on the inputs (registry order), evaluates, and
            writes output i to outputs[i].path. dtype may be any MLX dtype name
            (e.g. "int64", "bool"); the client checks it against the registry.
  time      {problem, inputs, warmup, samples, mode: "batched"|"per-launch", batch?}
            -> {mode, batch, warmup, samplesNs: [ns per call, ...], clock}
            Inputs are read and mx.eval'd once, before timing. Each sample is
            timed with time.perf_counter_ns, GC off:
              batched:    `batch` calls, then ONE mx.eval of all their outputs;
                          the sample is the elapsed time / batch.
              per-launch: one call, then its own mx.eval (batch is 1).
            Before them, one untimed call checks that the model runs at all; then
            `warmup` samples run, exactly like timed ones, and are dropped.
  cold      {problem, inputs} -> {ns, processCold}
            The first call + mx.eval of a freshly loaded problem (inputs read
            and evaluated first, untimed). processCold: no model had been called
            in this process before (MLX's kernel caches were empty).
  shutdown  {} -> {} then the worker exits. EOF on stdin also ends it.

The protocol owns the real stdin/stdout: at start the worker moves them to
private descriptors and points fd 0 at /dev/null and fd 1 at stderr, so a
print() in a model (or output from MLX's C++ code) lands on stderr.
"""

import ctypes
import gc
import importlib.util
import json
import os
import platform
import re
import signal
import stat
import struct
import sys
import threading
import time
import traceback

PROTOCOL = 2


def _claim_stdio():
    """Keep fds 0/1 for the protocol; everyone else writes to stderr."""
    proto_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull, "r")
    return proto_in, proto_out


# Run as `python -c`, sys.path[0] is the working directory: a user's numpy.py or
# mlx/ folder there would shadow the real packages.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]
PROTO_IN, PROTO_OUT = _claim_stdio()
sys.dont_write_bytecode = True  # no __pycache__ next to the user's references


# ---- sandbox -------------------------------------------------------------------
# Applied before numpy and MLX are imported: user namespaces need a
# single-threaded process, and Landlock and seccomp bind only the threads
# created after them (numpy starts a BLAS thread at import).

# Landlock (linux/landlock.h)
LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
LL_MAKE_SPECIAL = (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)  # char sock fifo block sym
LL_REFER, LL_TRUNCATE, LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
LL_READ = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR
LL_FILE_RIGHTS = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV
LL_NET_TCP = 0b11  # bind, connect
LL_SCOPES = 0b11  # abstract unix sockets, signals
SYS_LANDLOCK = (444, 445, 446)  # create_ruleset, add_rule, restrict_self: every arch

# seccomp: syscall numbers that the filter names, per architecture
SECCOMP_ARCHES = {
    "x86_64": (0xC000003E, dict(
        socket=41, socketpair=53, clone=56, fork=57, vfork=58, execve=59, kill=62, ptrace=101,
        tkill=200, tgkill=234, unshare=272, setns=308, process_vm_readv=310,
        process_vm_writev=311, execveat=322, pidfd_send_signal=424, io_uring_setup=425,
        io_uring_enter=426, io_uring_register=427, pidfd_open=434, clone3=435, pidfd_getfd=438,
        seccomp=317)),
    "aarch64": (0xC00000B7, dict(
        socket=198, socketpair=199, clone=220, execve=221, kill=129, ptrace=117, tkill=130,
        tgkill=131, unshare=97, setns=268, process_vm_readv=270, process_vm_writev=271,
        execveat=281, pidfd_send_signal=424, io_uring_setup=425, io_uring_enter=426,
        io_uring_register=427, pidfd_open=434, clone3=435, pidfd_getfd=438, seccomp=277)),
}
# Refused outright: sockets, new processes and programs, other processes' memory
# and signals, new namespaces, io_uring (its operations would bypass this filter).
SECCOMP_DENIED = ("socket socketpair fork vfork execve execveat ptrace tkill unshare setns "
                  "process_vm_readv process_vm_writev pidfd_open pidfd_getfd pidfd_send_signal "
                  "io_uring_setup io_uring_enter io_uring_register").split()

# What any Python with numpy and MLX reads besides its own folders.
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/nix/store", "/etc/ld.so.conf.d",
               "/sys/devices/system/cpu")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime", "/etc/passwd",
                "/etc/group", "/etc/nsswitch.conf", "/proc/cpuinfo", "/dev/urandom",
                "/dev/random")


class Sandbox(object):
    """Each protection as it was applied: what the hello reports."""

    def __init__(self):
        self.landlock = 0  # ABI in force; 0: none
        self.writes = False  # writes only under the scratch folder
        self.reads = False  # reads only Python, system libraries, the readable folders, scratch
        self.network = []  # layers: "namespace", "landlock-tcp", "no-sockets"
        self.processes = False  # no new processes or programs (seccomp)
        self.signals = ""  # signals only to itself: "landlock" or "seccomp"
        self.notes = []  # why a layer is missing

    def report(self):
        return dict(vars(self))


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _failed(what):
    return "%s: %s" % (what, os.strerror(ctypes.get_errno()))


def _enter_namespaces(libc, box):
    """A new user + network namespace: no interface but a loopback that is down."""
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(ctypes.c_int(0x10000000 | 0x40000000)) != 0:  # CLONE_NEWUSER | CLONE_NEWNET
        box.notes.append(_failed("user+network namespace"))
        return
    # Keep our own ids inside (else we would be 'nobody' to Python).
    for name, text in (("uid_map", "%d %d 1" % (uid, uid)), ("setgroups", "deny"),
                       ("gid_map", "%d %d 1" % (gid, gid))):
        try:
            with open("/proc/self/" + name, "w") as f:
                f.write(text)
        except OSError:
            pass
    box.network.append("namespace")


def _readable(config):
    """Folders and files the worker may read when reads are limited."""
    paths = set(config.get("readable", []))
    paths.update([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable))])
    paths.update(p for p in sys.path if p)  # stdlib, site-packages, user site, PYTHONPATH
    paths.update(SYSTEM_DIRS + SYSTEM_FILES)
    return paths


def _landlock(libc, config, box):
    """Writes only under the scratch folder; reads limited; no TCP; no signals out."""
    nr_create, nr_add, nr_restrict = SYS_LANDLOCK
    abi = libc.syscall(ctypes.c_long(nr_create), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        box.notes.append(_failed("Landlock"))
        return
    fs = (1 << 13) - 1
    fs |= (LL_REFER if abi >= 2 else 0) | (LL_TRUNCATE if abi >= 3 else 0)
    fs |= LL_IOCTL_DEV if abi >= 5 else 0
    limit_reads = config.get("limitReads", True)
    handled = fs if limit_reads else fs & ~LL_READ
    net = LL_NET_TCP if abi >= 4 else 0
    scoped = LL_SCOPES if abi >= 6 else 0
    attr = ctypes.create_string_buffer(struct.pack("<QQQ", handled, net, scoped))
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(ctypes.c_long(nr_create), attr, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        box.notes.append(_failed("Landlock ruleset"))
        return
    try:
        def allow(path, rights):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                return  # absent here
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    rights &= LL_FILE_RIGHTS
                rule = ctypes.create_string_buffer(struct.pack("<Qi", rights & handled, fd))
                libc.syscall(ctypes.c_long(nr_add), ctypes.c_int(ruleset), ctypes.c_int(1), rule,
                             ctypes.c_uint32(0))
            finally:
                os.close(fd)

        # Scratch: plain files and folders only, so that the client, reading an
        # output there, never meets a link, a FIFO or a device.
        allow(config["scratch"], fs & ~LL_MAKE_SPECIAL)
        allow("/dev/null", LL_READ_FILE | LL_WRITE_FILE | LL_IOCTL_DEV)
        if limit_reads:
            for path in _readable(config):
                allow(path, LL_READ)
        if libc.syscall(ctypes.c_long(nr_restrict), ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            box.notes.append(_failed("Landlock restrict"))
            return
    finally:
        os.close(ruleset)
    box.landlock, box.writes, box.reads = int(abi), True, bool(limit_reads)
    if net:
        box.network.append("landlock-tcp")
    if scoped:
        box.signals = "landlock"


def _seccomp(libc, box):
    """No sockets, no new processes or programs, signals only to this process."""
    machine = os.uname().machine
    if machine not in SECCOMP_ARCHES:
        box.notes.append("seccomp: no syscall table for %s" % machine)
        return
    arch, nr = SECCOMP_ARCHES[machine]
    pid = os.getpid()
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    LD, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
    prog = [(LD, 0, 0, 4), (JEQ, 0, "deny", arch), (LD, 0, 0, 0)]
    if machine == "x86_64":
        prog.append((JGE, "deny", 0, 0x40000000))  # the x32 ABI
    prog += [(JEQ, "clone", 0, nr["clone"]), (JEQ, "self", 0, nr["kill"]),
             (JEQ, "self", 0, nr["tgkill"]), (JEQ, "enosys", 0, nr["clone3"])]
    prog += [(JEQ, "deny", 0, nr[name]) for name in SECCOMP_DENIED if name in nr]
    prog.append((RET, 0, 0, allow))
    labels = {}
    # clone: threads only (CLONE_THREAD in the flags); clone3 says ENOSYS so libc falls back to clone
    labels["clone"] = len(prog)
    prog += [(LD, 0, 0, 16), (JSET, "allow", "deny", 0x00010000)]
    labels["self"] = len(prog)  # kill / tgkill: only our own pid
    prog += [(LD, 0, 0, 16), (JEQ, "allow", "deny", pid)]
    labels["allow"] = len(prog)
    prog.append((RET, 0, 0, allow))
    labels["deny"] = len(prog)
    prog.append((RET, 0, 0, eperm))
    labels["enosys"] = len(prog)
    prog.append((RET, 0, 0, enosys))
    code = b""
    for i, (op, jt, jf, k) in enumerate(prog):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        code += struct.pack("<HBBI", op, jt, jf, k)
    filt = ctypes.create_string_buffer(code, len(code))
    fprog = ctypes.create_string_buffer(struct.pack("<HxxxxxxQ", len(prog), ctypes.addressof(filt)))
    # SECCOMP_SET_MODE_FILTER with SECCOMP_FILTER_FLAG_SPEC_ALLOW: where the kernel's
    # spec_store_bypass_disable is "seccomp" (the x86 default before Linux 5.16), a
    # filter without it turns on a speculation mitigation that slows the timed code.
    if libc.syscall(ctypes.c_long(nr["seccomp"]), ctypes.c_uint(1), ctypes.c_uint(4), fprog) != 0:
        if libc.prctl(ctypes.c_int(22), ctypes.c_ulong(2), fprog, ctypes.c_ulong(0),
                      ctypes.c_ulong(0)) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
            box.notes.append(_failed("seccomp"))
            return
        box.notes.append("seccomp without SPEC_ALLOW: MLX may be timed slower")
    box.network.append("no-sockets")
    box.processes = True
    box.signals = box.signals or "seccomp"


def apply_sandbox(config):
    box = Sandbox()
    if not sys.platform.startswith("linux"):
        box.notes.append("no sandbox on %s" % sys.platform)
        return box
    if not config.get("scratch"):
        box.notes.append("no scratch folder given: not sandboxed")
        return box
    try:
        libc = _libc()
        off = config.get("off", [])  # layers left off on purpose (tests of each layer alone)
        if "namespace" not in off:
            _enter_namespaces(libc, box)  # first: it needs /proc, which Landlock then hides
        # Both Landlock and seccomp need no_new_privs: no setuid gains, ever.
        if libc.prctl(ctypes.c_int(38), ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0)) != 0:  # PR_SET_NO_NEW_PRIVS
            box.notes.append(_failed("no_new_privs"))
            return box
        if "landlock" not in off:
            _landlock(libc, config, box)
        if "seccomp" not in off:
            _seccomp(libc, box)  # last: it refuses unshare
    except Exception as e:  # a sandbox half applied is reported, never fatal
        box.notes.append("%s: %s" % (type(e).__name__, e))
    return box


CONFIG = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
PLATFORM = platform.platform()  # before the sandbox: it runs `uname -p`
SANDBOX = apply_sandbox(CONFIG)

try:
    import numpy as np
    import mlx.core as mx
    import mlx.nn as nn

    IMPORT_ERROR = None
except Exception as e:  # reported by hello and by every op that needs MLX
    IMPORT_ERROR = "%s: %s" % (type(e).__name__, e)


class Fail(Exception):
    def __init__(self, kind, message, tb="", file=""):
        Exception.__init__(self, message)
        self.kind, self.message, self.tb, self.file = kind, message, tb, file


def clock():
    info = time.get_clock_info("perf_counter")
    return {
        "name": "time.perf_counter_ns",
        "implementation": info.implementation,
        "resolutionNs": info.resolution * 1e9,
        "monotonic": info.monotonic,
    }


def describe(e, path=""):
    """One line for a Python error, with the reference file's line when it is in the stack."""
    lines = str(e).strip().splitlines()
    text = type(e).__name__ + (": " + lines[0] if lines else "")
    if path and not isinstance(e, SyntaxError):
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == path]
        if frames:
            text += " (at %s:%d)" % (os.path.basename(path), frames[-1].lineno)
    return text


def unreadable(e):
    """Why a file could not be read, naming the sandbox when it is the reason."""
    if isinstance(e, PermissionError) and SANDBOX.reads:
        return "outside the folders the sandboxed MLX worker may read: start it with this " \
               "file's folder in `readable`"
    return e.strerror or str(e)


def field(req, name, kind, default=None, required=True):
    if name not in req:
        if required:
            raise Fail("protocol", "'%s' needs field '%s'" % (req.get("op"), name))
        return default
    value = req[name]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise Fail("protocol", "'%s': field '%s' has the wrong type" % (req.get("op"), name))
    return value


# ---- tensors ---------------------------------------------------------------

if IMPORT_ERROR is None:
    # dtype name -> (numpy dtype of the file, MLX dtype to view it as, or None)
    FILE_DTYPES = {
        "float32": (np.float32, None),
        "float16": (np.float16, None),
        "bfloat16": (np.uint16, mx.bfloat16),
        "int32": (np.int32, None),
        "uint32": (np.uint32, None),
    }
    MX_NAMES = {}
    for _n in ("bool_ uint8 uint16 uint32 uint64 int8 int16 int32 int64 "
               "float16 bfloat16 float32 float64 complex64").split():
        if hasattr(mx, _n):
            MX_NAMES[getattr(mx, _n)] = _n.rstrip("_")


def read_input(i, ref):
    if not isinstance(ref, dict):
        raise Fail("protocol", "input %d is not an object" % i)
    path, dtype, shape = ref.get("path"), ref.get("dtype"), ref.get("shape")
    if dtype not in FILE_DTYPES:
        raise Fail("protocol", "input %d: unknown dtype %r" % (i, dtype))
    if not isinstance(path, str) or not isinstance(shape, list):
        raise Fail("protocol", "input %d needs 'path' and 'shape'" % i)
    np_dtype, view = FILE_DTYPES[dtype]
    numel = 1
    for d in shape:
        numel *= d
    want = numel * np.dtype(np_dtype).itemsize
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise Fail("input", "input %d: cannot read %s (%s)" % (i, path, e.strerror))
    if size != want:
        raise Fail("input", "input %d: %s has %d bytes; %s[%s] needs %d"
                   % (i, path, size, dtype, ",".join(map(str, shape)), want))
    try:
        host = np.fromfile(path, dtype=np.dtype(np_dtype).newbyteorder("<")).reshape(shape)
    except OSError as e:
        raise Fail("input", "input %d: cannot read %s (%s)" % (i, path, unreadable(e)))
    arr = mx.array(host)
    return arr.view(view) if view is not None else arr


def read_inputs(req):
    refs = field(req, "inputs", list)
    return [read_input(i, r) for i, r in enumerate(refs)]


def write_output(a, path):
    if a.dtype == mx.bfloat16:
        a = a.view(mx.uint16)  # numpy has no bfloat16: write the bit patterns
    host = np.array(a)
    host.astype(host.dtype.newbyteorder("<"), copy=False).tofile(path)  # tofile writes C order


def as_outputs(result):
    if isinstance(result, mx.array):
        return [result]
    if isinstance(result, (tuple, list)) and all(isinstance(r, mx.array) for r in result):
        return list(result)
    raise Fail("output", "Model returned %s; expected an mlx array or a tuple of them"
               % type(result).__name__)


# ---- problems ----------------------------------------------------------------

class Problem(object):
    def __init__(self, pid, path, module, fn, entry):
        self.id, self.path, self.module, self.fn, self.entry = pid, path, module, fn, entry
        self.called = False


PROBLEMS = {}
STATE = {"modules": 0, "anyCalled": False}


def get_problem(req):
    pid = field(req, "problem", str)
    if pid not in PROBLEMS:
        raise Fail("protocol", "problem '%s' is not loaded" % pid)
    return PROBLEMS[pid]


def entry_point(cls):
    """'__call__' if the user's classes define it (nn.Module does not), else 'forward'."""
    for c in cls.__mro__:
        if c is nn.Module or c is dict or c is object:
            break
        if "__call__" in vars(c):
            return "__call__"
    return "forward" if callable(getattr(cls, "forward", None)) else None


def call(p, inputs):
    """Call the model once and evaluate: the outputs, as a list of arrays."""
    try:
        outs = as_outputs(p.fn(*inputs))
        mx.eval(outs)
    except Fail:
        raise
    except (Exception, SystemExit) as e:
        raise Fail("model", describe(e, p.path), traceback.format_exc(), p.path)
    finally:
        p.called = True
        STATE["anyCalled"] = True
    return outs


def drop(pid):
    old = PROBLEMS.pop(pid, None)
    if old is not None:
        sys.modules.pop(old.module, None)


# ---- integrity: may this worker serve another problem? -----------------------
#
# A worker serves problem after problem only while the references it ran left
# no trace that could change the next problem's outputs or times: no rebound
# attribute of MLX, numpy, the standard library's clock/threading/import
# machinery or this worker itself; no new Python thread, trace or profile
# hook, signal handler, import hook or gc callback; and no native code loaded
# (ctypes, cffi, or any extension module not loaded before), since native
# code could change anything unseen. Otherwise the client starts a fresh
# worker for the next problem. Additions (lazily loaded submodules, new
# names) are not traces; a reference's own module is dropped with it.

WATCHED_PREFIXES = ("mlx",)
WATCHED_MODULES = ("__main__", "builtins", "sys", "os", "posix", "time", "math", "random",
                   "threading", "_thread", "importlib", "importlib.util", "io", "json", "struct",
                   "signal", "gc", "platform", "re", "traceback", "functools", "itertools",
                   "numpy", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.lib")
NATIVE_MODULES = ("ctypes", "_ctypes", "cffi", "_cffi_backend")


def _watched(name):
    return name in WATCHED_MODULES or name.split(".")[0] in WATCHED_PREFIXES


def _is_native(module):
    f = getattr(module, "__file__", None) or ""
    return f.endswith((".so", ".pyd", ".dylib"))


def _fingerprint():
    modules, classes = {}, {}
    for name, m in list(sys.modules.items()):
        if m is None or not _watched(name):
            continue
        try:
            items = list(vars(m).items())
        except TypeError:
            continue
        modules[name] = (id(m), {k: id(v) for k, v in items})
        # Classes can be patched too (nn.Linear.__call__ = …), which no module attribute shows.
        for k, v in items:
            if isinstance(v, type) and id(v) not in classes:
                try:
                    classes[id(v)] = ("%s.%s" % (name, k), {a: id(b) for a, b in list(vars(v).items())})
                except TypeError:
                    pass
    return {
        "modules": modules,
        "classes": classes,
        "native": {n for n, m in list(sys.modules.items()) if m is not None and _is_native(m)},
        "names": set(sys.modules),
        "threads": {id(t) for t in threading.enumerate()},
        "signals": {s: id(signal.getsignal(s)) for s in signal.valid_signals()
                    if s not in (signal.SIGKILL, signal.SIGSTOP)},
        "hooks": [id(x) for x in (sys.meta_path + sys.path_hooks)] + [len(gc.callbacks)],
    }


def _traces(base):
    now = _fingerprint()
    why = []
    for name, (mid, attrs) in base["modules"].items():
        if name not in now["modules"]:
            why.append("module %s was removed" % name)
            continue
        nid, nattrs = now["modules"][name]
        if nid != mid:
            why.append("module %s was replaced" % name)
        changed = [k for k, v in attrs.items() if nattrs.get(k, v) != v or k not in nattrs]
        if changed:
            why.append("%s.%s was rebound" % (name, changed[0]))
    for cid, (label, attrs) in base["classes"].items():
        nattrs = now["classes"].get(cid, (label, {}))[1]
        changed = [k for k, v in attrs.items() if nattrs.get(k) != v]
        if changed:
            why.append("%s.%s was rebound" % (label, changed[0]))
            break
    loaded = {n for n in now["native"] - base["native"] if not n.startswith(("mlx", "numpy"))}
    loaded |= {n for n in NATIVE_MODULES if n in sys.modules and n not in base["names"]}
    if loaded:
        why.append("native code was loaded (%s)" % ", ".join(sorted(loaded)[:3]))
    if now["threads"] - base["threads"]:
        why.append("a thread was left running")
    if now["signals"] != base["signals"]:
        why.append("a signal handler was changed")
    if now["hooks"] != base["hooks"]:
        why.append("an import hook or gc callback was added")
    if sys.gettrace() is not None or sys.getprofile() is not None \
            or threading.gettrace() is not None or threading.getprofile() is not None:
        why.append("a trace or profile hook was set")
    return why


BASELINE = {}
# Lines on stderr that the client reads: a trace the audit hook saw (it cannot
# be taken back), and the end of an integrity check (so the client knows it
# has read every trace written before it).
TAINT_PREFIX = "metalbench-worker-trace: "
SYNC_PREFIX = "metalbench-worker-sync: "
# Audit events (PEP 578) that reach below Python or into other code's frames
# and objects; audit hooks cannot be removed once added.
AUDITED = ("ctypes.", "sys.settrace", "sys.setprofile", "sys._current_frames", "sys.addaudithook",
           "gc.get_objects", "gc.get_referrers", "gc.get_referents", "object.__setattr__",
           "object.__delattr__", "cpython.PyInterpreterState", "cpython._PySys_ClearAuditHooks",
           "function.__new__", "code.__new__")


def _install_audit_hook():
    write, seen = os.write, []

    def hook(event, args):
        if not seen and event.startswith(AUDITED):
            seen.append(event)
            write(2, (TAINT_PREFIX + event + "\n").encode())

    sys.addaudithook(hook)


def op_integrity(req):
    """Whether the references run so far left the worker as it started."""
    nonce = field(req, "nonce", str)
    why = _traces(BASELINE["fingerprint"]) if "fingerprint" in BASELINE else ["no baseline"]
    os.write(2, (SYNC_PREFIX + nonce + "\n").encode())
    return {"clean": not why, "why": why[:5]}


# ---- ops -----------------------------------------------------------------------

def op_hello(req):
    if IMPORT_ERROR is not None:
        raise Fail("setup", IMPORT_ERROR)
    device = mx.default_device()
    try:
        metal = bool(mx.metal.is_available())
    except Exception:
        metal = False
    return {
        "protocol": PROTOCOL,
        "python": platform.python_version(),
        "executable": sys.executable,
        "mlx": mx.__version__,
        "numpy": np.__version__,
        "device": "gpu" if device.type == mx.gpu else "cpu",
        "metal": metal,
        "platform": PLATFORM,
        "sandbox": SANDBOX.report(),
        "machine": platform.machine(),
        "pid": os.getpid(),
        "clock": clock(),
    }


def op_load(req):
    pid = field(req, "problem", str)
    path = os.path.abspath(field(req, "path", str))
    init = field(req, "init", dict, {}, required=False)
    seed = field(req, "seed", int, 0, required=False)
    if not os.path.isfile(path):
        raise Fail("load", "%s: no such file" % path, file=path)
    try:
        open(path, "rb").close()
    except OSError as e:
        raise Fail("load", "%s: cannot read it (%s)" % (path, unreadable(e)), file=path)
    t0 = time.perf_counter_ns()
    STATE["modules"] += 1
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    name = "metalbench_ref_%d_%s" % (STATE["modules"], stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # some code (dataclasses, pickling) looks itself up here
    try:
        spec.loader.exec_module(module)
        cls = getattr(module, "Model", None)
        if not isinstance(cls, type):
            raise Fail("load", "%s defines no class Model" % path, file=path)
        entry = entry_point(cls)
        if entry is None:
            raise Fail("load", "%s: Model defines neither __call__ nor forward" % path, file=path)
        mx.random.seed(seed)  # models that draw weights draw the same ones every run
        try:
            model = cls(**init)
            if isinstance(model, nn.Module):
                mx.eval(model.parameters())
        except (Exception, SystemExit) as e:
            raise Fail("load", "%s: Model(**%s) raised %s" % (path, json.dumps(init), describe(e, path)),
                       traceback.format_exc(), path)
    except Fail:
        sys.modules.pop(name, None)
        raise
    except (Exception, SystemExit) as e:
        sys.modules.pop(name, None)
        raise Fail("load", "%s: %s" % (path, describe(e, path)), traceback.format_exc(), path)
    drop(pid)
    fn = model if entry == "__call__" else model.forward
    PROBLEMS[pid] = Problem(pid, path, name, fn, entry)
    return {"problem": pid, "entry": entry, "module": name, "loadNs": time.perf_counter_ns() - t0}


def op_unload(req):
    drop(field(req, "problem", str))
    return {}


def op_run(req):
    p = get_problem(req)
    specs = field(req, "outputs", list)
    outs = call(p, read_inputs(req))
    if len(outs) != len(specs):
        raise Fail("output", "Model returned %d output(s); %d expected" % (len(outs), len(specs)),
                   file=p.path)
    for i, (a, spec) in enumerate(zip(outs, specs)):
        path = spec.get("path") if isinstance(spec, dict) else None
        if not isinstance(path, str):
            raise Fail("protocol", "output %d needs 'path'" % i)
        try:
            write_output(a, path)
        except OSError as e:
            raise Fail("output", "output %d: cannot write %s (%s)" % (i, path, e.strerror))
    return {"outputs": [{"dtype": MX_NAMES.get(a.dtype, str(a.dtype)), "shape": list(a.shape)}
                        for a in outs]}


def op_runs(req):
    """Several runs in one request: {problem, runs: [{inputs, outputs}]} → {runs: [Ran]}."""
    runs = field(req, "runs", list)
    return {"runs": [op_run(dict(r, problem=req.get("problem"))) for r in runs
                     if isinstance(r, dict)]}


def op_time(req):
    p = get_problem(req)
    mode = field(req, "mode", str)
    if mode not in ("batched", "per-launch"):
        raise Fail("protocol", "time: mode must be 'batched' or 'per-launch'")
    warmup = field(req, "warmup", int)
    samples = field(req, "samples", int)
    batch = field(req, "batch", int) if mode == "batched" else 1
    if warmup < 0 or samples < 1 or batch < 1:
        raise Fail("protocol", "time: needs warmup >= 0, samples >= 1, batch >= 1")
    inputs = read_inputs(req)
    mx.eval(inputs)
    call(p, inputs)  # fails here, with a clear message, if the model cannot run at all
    fn, now, evaluate = p.fn, time.perf_counter_ns, mx.eval
    out = []
    gc_was_on = gc.isenabled()
    gc.disable()  # a collection inside a sample is noise, not the model's cost
    try:
        for i in range(warmup + samples):
            if mode == "batched":
                t0 = now()
                results = [fn(*inputs) for _ in range(batch)]
                evaluate(results)
                t1 = now()
            else:
                t0 = now()
                evaluate(fn(*inputs))
                t1 = now()
            if i >= warmup:
                out.append((t1 - t0) / batch)
    except (Exception, SystemExit) as e:
        raise Fail("model", describe(e, p.path), traceback.format_exc(), p.path)
    finally:
        if gc_was_on:
            gc.enable()
    return {"mode": mode, "batch": batch, "warmup": warmup, "samplesNs": out, "clock": clock()}


def op_cold(req):
    p = get_problem(req)
    if p.called:
        raise Fail("state", "already called since load; load it again to time a cold call")
    inputs = read_inputs(req)
    mx.eval(inputs)
    process_cold = not STATE["anyCalled"]
    t0 = time.perf_counter_ns()
    call(p, inputs)
    return {"ns": time.perf_counter_ns() - t0, "processCold": process_cold}


def op_shutdown(req):
    return {}


OPS = {
    "hello": op_hello,
    "integrity": op_integrity,
    "load": op_load,
    "unload": op_unload,
    "run": op_run,
    "runs": op_runs,
    "time": op_time,
    "cold": op_cold,
    "shutdown": op_shutdown,
}


def reply(obj):
    PROTO_OUT.write(json.dumps(obj, allow_nan=False) + "\n")
    PROTO_OUT.flush()


def failure(rid, kind, message, tb="", file=""):
    return {"id": rid, "ok": False, "kind": kind, "error": message, "traceback": tb, "file": file}


def handle(line):
    try:
        req = json.loads(line)
    except ValueError as e:
        return failure(None, "protocol", "request is not JSON (%s)" % e), None
    if not isinstance(req, dict):
        return failure(None, "protocol", "request is not a JSON object"), None
    rid, op = req.get("id"), req.get("op")
    try:
        if op not in OPS:
            raise Fail("protocol", "unknown op %r" % (op,))
        if IMPORT_ERROR is not None and op not in ("hello", "shutdown"):
            raise Fail("setup", IMPORT_ERROR)
        result = OPS[op](req)
        result.update({"id": rid, "ok": True})
        return result, op
    except Fail as f:
        return failure(rid, f.kind, f.message, f.tb, f.file), op
    except (Exception, SystemExit) as e:
        return failure(rid, "internal", describe(e), traceback.format_exc()), op


def main():
    # Ctrl-C reaches the whole process group; the client decides when the
    # worker stops (shutdown, or end of stdin), so a half-finished reply is
    # never written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The state every later problem must find: taken once MLX is imported and
    # the worker's own functions exist, before any reference runs.
    if IMPORT_ERROR is None:
        BASELINE["fingerprint"] = _fingerprint()
        _install_audit_hook()
    for line in PROTO_IN:
        if not line.strip():
            continue
        response, op = handle(line)
        reply(response)
        if op == "shutdown":
            break


# Ops added by the client (the Welder's PyTorch runner, torch_worker.py): their
# sources come in the config and run here, in this same sandbox, before the
# integrity baseline; they may add to OPS.
for _source in CONFIG.get("extensions", []):
    exec(compile(_source, "<metalbench worker extension>", "exec"), globals())

main()
