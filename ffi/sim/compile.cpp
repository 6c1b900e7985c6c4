// The compile step: MSL source -> cached kernel.so (see compile.h).
#include "compile.h"

#include "../bridge.h"
#include "diagnostics.h"
#include "elf_check.h"
#include "include_check.h"
#include "kernel_ast.h"
#include "mb_sim_abi.h"
#include "msl_source.h"
#include "process.h"
#include "sha256.h"

#include <dirent.h>
#include <dlfcn.h>
#include <ftw.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <regex>
#include <set>

namespace mbsim {

namespace {

// Bumped whenever the generated code or the flags change meaning.
constexpr const char *kCacheVersion = "mbsim-cache-4";

const char *const kFixCompiler =
    "install clang-19: sudo apt-get install clang-19 libclang-rt-19-dev "
    "(or open the device with cxx=/path/to/clang++, version 15 or newer)";

bool mkdirs(const std::string &path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    std::string part = path.substr(0, i);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

void remove_tree(const std::string &dir) {
  nftw(
      dir.c_str(),
      [](const char *p, const struct stat *, int, struct FTW *) { return remove(p); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Runs a short command; its stdout ("" if it failed). Output files get
// names of their own: devices open concurrently, in several processes.
std::string command_output(const std::vector<std::string> &argv, const std::string &tmp) {
  static std::atomic<unsigned> counter{0};
  std::string base = tmp + "/probe-" + std::to_string(getpid()) + "-" +
                     std::to_string(counter.fetch_add(1));
  std::string out = base + ".out", err = base + ".err", text;
  ProcessResult r = run_confined(Confinement::None, {{}, tmp}, "", argv, tmp, out, err, 20000);
  bool ok = r.started && r.exit_code == 0 && read_file(out, &text);
  unlink(out.c_str());
  unlink(err.c_str());
  return ok ? text : std::string();
}

// "Debian clang version 19.1.7 (...)" -> {19, "19.1.7"}
bool clang_version(const std::string &cxx, const std::string &tmp, int *major, std::string *v) {
  std::string text = command_output({cxx, "--version"}, tmp);
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("clang version ([0-9]+)\\.([0-9]+)\\.([0-9]+)")))
    return false;
  *major = std::atoi(m[1].str().c_str());
  *v = m[1].str() + "." + m[2].str() + "." + m[3].str();
  return true;
}

// Content hash of the regular files in `dir` and its folders (sorted by
// name; MetalPerformancePrimitives/ is a folder of the shim).
std::string hash_dir(const std::string &dir) {
  std::vector<std::string> names;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d))
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  Sha256 h;
  for (const auto &n : names) {
    std::string path = dir + "/" + n, content;
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      h.field(n + "/");
      h.field(hash_dir(path));
      continue;
    }
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (8 << 20)) continue;
    if (!read_file(path, &content)) continue;
    h.field(n);
    h.field(content);
  }
  return h.hex();
}

// The file name diagnostics show: the base name, in a safe alphabet.
std::string file_name(const std::string &given) {
  std::string n = given.substr(given.find_last_of('/') == std::string::npos
                                   ? 0
                                   : given.find_last_of('/') + 1);
  for (char &c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  if (n.empty() || n[0] == '.') n = "kernel.metal";
  return n;
}

std::vector<std::string> common_flags(const Compiler &c, const CompileRequest &req,
                                      const std::vector<std::string> &defines) {
  int major = 3, minor = 1;
  std::sscanf(req.language_version.c_str(), "%d.%d", &major, &minor);
  std::vector<std::string> f = {
      // C++ for OpenCL (C++17 with address spaces as type qualifiers, as in
      // MSL: overloads on device/threadgroup/constant/thread, no silent
      // conversion between spaces); OpenCL's own headers stay out
      c.cxx, "-cl-std=clc++2021", "-cl-no-stdinc", "-Xclang",
      "-cl-ext=+__cl_clang_function_pointers,+cl_khr_fp16,+__cl_clang_variadic_functions,"
      "+__cl_clang_bitfields",
      "-nostdinc", "-isystem", c.shim_dir,
      // by path: no header of the kernel's folder can stand in for it
      "-include", c.shim_dir + "/metal_stdlib",
      "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics", "-fno-strict-aliasing",
      "-fno-math-errno", "-ffp-contract=off",
      // float -> integer conversions saturate as on Apple GPUs (NaN -> 0,
      // out of range -> the type's min/max): clang then emits fpto[su]i.sat
      // for scalar casts; x86 would give 0x80000000 or wrap
      "-fno-strict-float-cast-overflow",
      // MSL has no implicit conversions between vector types
      "-flax-vector-conversions=none",
      // half and bfloat arithmetic rounds after every operation, as on a GPU
      "-Xclang", "-ffloat16-excess-precision=none", "-Xclang", "-fbfloat16-excess-precision=none",
      "-fno-color-diagnostics", "-fmessage-length=0", "-Wno-ignored-attributes",
      "-Wno-duplicate-decl-specifier", "-Wno-unknown-attributes",
      // `static const constant float x = ...;` in a class: Metal accepts it
      "-Wno-static-float-init",
      "-D__METAL_VERSION__=" + std::to_string(major * 100 + minor * 10), "-D__METAL__=1",
      "-D__HAVE_BFLOAT__=1", "-D__METALBENCH_SIM__=1"};
  // No clang configuration files (clang 16+): only these flags count.
  if (std::atoi(c.version.c_str()) >= 16) f.insert(f.begin() + 1, "--no-default-config");
#if defined(__x86_64__)
  // Hardware fma and half conversions where the CPU has them (kernels run
  // on this machine; the flag is part of the cache key). Results are the
  // same either way: fma is exact, conversions round the same.
  if (__builtin_cpu_supports("x86-64-v3")) f.push_back("-march=x86-64-v3");
#endif
  f.insert(f.end(), defines.begin(), defines.end());
  // The user's headers, copied into the build folder's inc/, for
  // #include "x.h" only (as on Metal): <metal_stdlib>, <mb_sim_entry.h>
  // and the shim's own includes always find the shim.
  if (!req.include_dir.empty()) {
    f.push_back("-iquote");
    f.push_back("inc");
  }
  return f;
}

// The shim, precompiled: parsing it is most of a small kernel's compile.
// One PCH per set of language flags (clang refuses a PCH whose -O2, -fPIC or
// sanitizers differ from the compile's), built once from our own headers
// and kept in the cache; "" when it cannot be built (then -include it is).
std::string shim_pch(const Compiler &c, const CompileRequest &req,
                     const std::vector<std::string> &pass) {
  std::vector<std::string> f = common_flags(c, req, {});
  for (size_t i = 0; i + 1 < f.size(); ++i)
    if (f[i] == "-include") f.erase(f.begin() + static_cast<long>(i), f.begin() + static_cast<long>(i) + 2);
  f.insert(f.end(), pass.begin(), pass.end());
  Sha256 key;
  for (const std::string &x : f) key.field(x);
  key.field(c.version);
  key.field(c.shim_hash);
  const std::string dir = c.cache_dir + "/pch", path = dir + "/" + key.hex() + ".pch";
  if (access(path.c_str(), R_OK) == 0) return path;
  if (!mkdirs(dir)) return "";
  std::string tmp = dir + "/build-XXXXXX";
  if (!mkdtemp(&tmp[0])) return "";
  f.insert(f.end(), {"-x", "clcpp", "-c", "-Xclang", "-emit-pch", "-o", tmp + "/shim.pch",
                     c.shim_dir + "/metal_stdlib"});
  std::vector<std::string> readable = c.toolchain;
  readable.push_back(c.shim_dir);
  ProcessResult r = run_confined(c.sandbox, ConfinePlan{readable, tmp}, c.bwrap, f, tmp,
                                 tmp + "/out", tmp + "/err", c.timeout_ms);
  // Two processes may build it at once: rename is atomic.
  bool ok = r.started && !r.timed_out && r.exit_code == 0 &&
            rename((tmp + "/shim.pch").c_str(), path.c_str()) == 0;
  remove_tree(tmp);
  return ok ? path : "";
}

// -include the shim -> -include-pch its PCH.
void use_pch(std::vector<std::string> *argv, const std::string &pch) {
  if (pch.empty()) return;
  for (size_t i = 0; i + 1 < argv->size(); ++i)
    if ((*argv)[i] == "-include") (*argv)[i] = "-include-pch", (*argv)[i + 1] = pch;
}

// The user's code goes into namespace __mbu (one line of ours, then a
// #line so that messages keep the user's lines).
std::string wrap_source(const std::string &text, const std::string &name) {
  return "namespace __mbu { __MB_KERNEL_PRELUDE\n#line 1 \"" + name + "\"\n" + text + "\n}\n";
}
constexpr unsigned kWrapLines = 2;

// The glue is compiled after the kernel yet sees none of its macros: the
// shim's entry header comes first, every name the kernel #defines is
// #undef'd before our lines, and those use no macro of ours (a kernel may
// #undef those) and only reserved or qualified names.
std::string entry_file(const std::string &source_file, const KernelAst &ast,
                       const std::vector<std::string> &macros) {
  size_t n = ast.params.size();
  std::string s;
  s += "// Generated by the MetalBench simulator: binds the kernel to the runner.\n";
  s += "#include <mb_sim_entry.h>\n#include \"" + source_file + "\"\n";
  for (const std::string &m : macros) s += "#undef " + m + "\n";
  s += "namespace __mbu {\n";
  // A template kernel named by host_name: its explicit instantiation was
  // made a declaration (msl_source.cpp); this one is compiled. (The name
  // without its leading "::", which would continue the decltype.)
  if (ast.callable.find('<') != std::string::npos)
    s += "template decltype(" + ast.callable + ") " + ast.callable.substr(2) + ";\n";
  s += "using __mb_F = decltype(&" + ast.callable + ");\n";
  s += "static_assert(::__mb::fn<__mb_F>::arity == " + std::to_string(n) +
       ", \"kernel signature changed between compile passes\");\n";
  s += "static const ::mb_param __mb_params[" + std::to_string(n ? n : 1) + "] = {\n";
  for (size_t i = 0; i < n; ++i) {
    const ParamBinding &p = ast.params[i];
    // A parameter whose function constant is false does not exist on
    // Metal: nothing need be bound (a pointer to it faults if used).
    std::string bytes = p.absent ? std::string("0")
                                 : "::__mb::min_bytes<::__mb::arg_t<__mb_F, " +
                                       std::to_string(i) + ">>()";
    s += "  {" + std::to_string(p.kind) + ", " + std::to_string(p.index) + ", " + bytes +
         ", \"" + p.name + "\"},\n";
  }
  s += "};\n";
  s += "static void __mb_run(const ::mb_dispatch *__mb_d, const ::mb_group *__mb_g, "
       "::mb_cursor *__mb_c) {\n"
       "  (void)__mb_d; (void)__mb_g;\n"
       "  ::__mb::run_threads(__mb_c, [&](const ::mb_thread *__mb_t) {\n"
       "    (void)__mb_t;\n    " +
       ast.callable + "(";
  for (size_t i = 0; i < n; ++i) {
    const ParamBinding &p = ast.params[i];
    std::string type = "::__mb::arg_t<__mb_F, " + std::to_string(i) + ">";
    std::string idx = std::to_string(p.index);
    if (i) s += ",";
    s += "\n        ";
    if (p.kind == MB_PARAM_BUFFER)
      s += "::__mb::bind_memory<" + type + ">(__mb_d->buffers[" + idx + "])";
    else if (p.kind == MB_PARAM_THREADGROUP)
      s += "::__mb::bind_memory<" + type + ">(__mb_g->threadgroup_args[" + idx + "])";
    else
      s += "::__mb::bind_position<" + type + ">(::__mb::position<" + idx +
           ">(__mb_d, __mb_g, __mb_t))";
  }
  s += ");\n  });\n}\n} // namespace __mbu\n";
  const std::string exported = "extern \"C\" __attribute__((visibility(\"default\"))) ";
  s += exported + "const ::mb_kernel_info mb_kernel_info_v = {\n    " +
       std::to_string(MB_SIM_RT_ABI) + ", " + std::to_string(n) + ", ::__mbu::__mb_params, " +
       std::to_string(ast.max_total_threads) +
       ", 0,\n"
       "    __start_mb_tg, __stop_mb_tg, __start_mb_sync, __stop_mb_sync,\n"
       "    &mb_kernel_rt, mb_kernel_tg_offsets};\n";
  s += exported + "void mb_kernel_run(const ::mb_dispatch *__mb_d, const ::mb_group *__mb_g, "
                  "::mb_cursor *__mb_c) {\n  ::__mbu::__mb_run(__mb_d, __mb_g, __mb_c);\n}\n";
  return s;
}

// "a=1, 3=true" -> {{"a","1"},{"3","true"}}
ConstantValues parse_constants(const std::string &text) {
  ConstantValues out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = trim(text.substr(start, end - start));
    while (!item.empty() && item[0] == ' ') item.erase(0, 1);
    size_t eq = item.find('=');
    if (eq != std::string::npos) {
      std::string k = item.substr(0, eq), v = item.substr(eq + 1);
      while (!k.empty() && k.back() == ' ') k.pop_back();
      while (!v.empty() && v[0] == ' ') v.erase(0, 1);
      out.emplace_back(k, v);
    }
    start = end + 1;
  }
  return out;
}

// Messages name the user's headers as written, not as copied.
std::string user_paths(std::string text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    bool boundary = i == 0 || text[i - 1] == '\n' || text[i - 1] == ' ' || text[i - 1] == '(';
    if (boundary && text.compare(i, 4, "inc/") == 0) i += 3;
    else out += text[i];
  }
  return out;
}

CompileResult fail(int status, std::string message, const std::string &tmp) {
  if (!tmp.empty() && !std::getenv("MB_SIM_KEEP_BUILD")) remove_tree(tmp); // kept: debugging
  CompileResult r;
  r.status = status;
  r.message = std::move(message);
  return r;
}

// What a kernel may take from the C library: the math functions and mem*
// that the shim's code and clang's lowering call, and the compiler's
// arithmetic helpers. Anything else (malloc, operator new, rand, write,
// syscall, a variable of the C library) would give a kernel state across
// launches or a way out; Metal has none of it.
bool allowed_import(const std::string &n) {
  static const std::set<std::string> exact = {"memcpy", "memmove", "memset", "memcmp", "bcmp",
                                              "__stack_chk_fail", "__stack_chk_guard"};
  if (exact.count(n)) return true;
  static const std::set<std::string> math = {
      "acos",  "acosh",  "asin",     "asinh",     "atan",     "atan2",      "atanh",  "cbrt",
      "ceil",  "copysign", "cos",    "cosh",      "cospi",    "erf",        "erfc",   "exp",
      "exp10", "exp2",   "expm1",    "fabs",      "fdim",     "floor",      "fma",    "fmax",
      "fmin",  "fmod",   "frexp",    "hypot",     "ilogb",    "ldexp",      "lgamma", "llrint",
      "llround", "log",  "log10",    "log1p",     "log2",     "logb",       "lrint",  "lround",
      "modf",  "nan",    "nearbyint", "nextafter", "nexttoward", "pow",     "remainder",
      "remquo", "rint",  "round",    "scalbln",   "scalbn",   "sin",        "sincos", "sinh",
      "sinpi", "sqrt",   "tan",      "tanh",      "tanpi",    "tgamma",     "trunc"};
  std::string base = n;
  if (base.size() > 9 && base.compare(0, 2, "__") == 0 &&
      base.compare(base.size() - 7, 7, "_finite") == 0)
    base = base.substr(2, base.size() - 9); // __expf_finite
  if (math.count(base)) return true;
  if (!base.empty() && (base.back() == 'f' || base.back() == 'l') &&
      math.count(base.substr(0, base.size() - 1)))
    return true;
  // libgcc / compiler-rt arithmetic: __extendhfsf2, __truncsfbf2, __powisf2, __mulsc3 ...
  if (n.size() < 4 || n.compare(0, 2, "__") != 0) return false;
  for (size_t i = 2; i < n.size(); ++i)
    if (!std::islower(static_cast<unsigned char>(n[i])) && !std::isdigit(static_cast<unsigned char>(n[i])))
      return false;
  for (const char *h : {"extend", "trunc", "fix", "float", "powi", "mul", "div", "add", "sub", "neg",
                        "cmp", "unord", "eq", "ne", "lt", "le", "gt", "ge", "popcount", "parity",
                        "clz", "ctz", "ffs", "bswap", "ashl", "ashr", "lshr", "udiv", "umod", "mod"})
    if (n.compare(2, std::strlen(h), h) == 0) return true;
  return false;
}

std::string demangle_import(const std::string &n) {
  if (n == "_Znwm" || n == "_Znam" || n.compare(0, 5, "_ZnwmS") == 0) return "operator new";
  if (n.compare(0, 3, "_Zd") == 0) return "operator delete";
  return n;
}

// A kernel.so the compile step just built: inert, with no writable state,
// and importing only what allowed_import allows. "" or why not.
std::string check_built(const std::string &so, const std::string &fn, bool allow_libc) {
  std::string why;
  if (!elf_is_inert(so, &why)) return "compiled kernel '" + fn + "' refused: " + why;
  std::vector<std::string> imports;
  if (!elf_imports(so, &imports, &why)) return "compiled kernel '" + fn + "' refused: " + why;
  if (allow_libc) return ""; // tests of the runner's own sandbox
  for (const std::string &name : imports)
    if (!allowed_import(name))
      return "kernel '" + fn + "' uses '" + demangle_import(name) +
             "' from the C library; kernels have no heap, files or other state that outlives "
             "a launch (Metal has none) — fix: use MSL built-ins and fixed-size local or "
             "threadgroup arrays";
  return "";
}

} // namespace

// What running a compiler tells: its version, and whether compiler-rt's
// builtins are installed (__bf16 arithmetic needs libclang-rt-<n>-dev).
struct Probe {
  int major = 0;
  std::string version;
  bool compiler_rt = false;
};

// A compiler file's identity (path, inode, size, mtime) as a hash: memos
// keyed by it are redone for a reinstalled or upgraded compiler.
std::string compiler_identity(const std::string &path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "";
  Sha256 h;
  h.field(path);
  h.field(std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
          std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec));
  return h.hex().substr(0, 16);
}

// Written whole and renamed: a concurrent reader sees the old text or the new.
void write_memo(const std::string &path, const std::string &text) {
  std::string part = path + "." + std::to_string(getpid()) + ".part";
  if (write_file(part, text) && rename(part.c_str(), path.c_str()) != 0) unlink(part.c_str());
}

// Probing runs clang twice (~150 ms), so the answer is kept in the cache
// folder under the compiler file's identity.
Probe probe_compiler(const std::string &path, const std::string &tmp, const std::string &cache) {
  Probe p;
  std::string id = compiler_identity(path);
  std::string memo = id.empty() ? "" : cache + "/compiler-" + id;
  std::string text;
  char version[64] = {0};
  int rt = 0;
  // A memo without compiler-rt is probed again: the package may be installed since.
  if (!memo.empty() && read_file(memo, &text) &&
      std::sscanf(text.c_str(), "%d %63s %d", &p.major, version, &rt) == 3 && rt == 1) {
    p.version = version;
    p.compiler_rt = rt != 0;
    return p;
  }
  if (!clang_version(path, tmp, &p.major, &p.version)) return Probe{};
  std::string rt_path =
      trim(command_output({path, "-rtlib=compiler-rt", "-print-libgcc-file-name"}, tmp));
  p.compiler_rt = !rt_path.empty() && access(rt_path.c_str(), R_OK) == 0;
  if (!memo.empty())
    write_memo(memo, std::to_string(p.major) + " " + p.version + " " +
                         (p.compiler_rt ? "1" : "0") + "\n");
  return p;
}

std::string parent_dir(const std::string &p) {
  size_t slash = p.find_last_of('/');
  return slash == std::string::npos || slash == 0 ? "" : p.substr(0, slash);
}

// The folders of the C and C++ runtime libraries this process loaded:
// where the compiler's own shared libraries are found too.
int runtime_dirs(dl_phdr_info *info, size_t, void *data) {
  std::string n = info->dlpi_name ? info->dlpi_name : "";
  std::string base = n.substr(n.find_last_of('/') == std::string::npos ? 0 : n.find_last_of('/') + 1);
  for (const char *lib : {"libc.so", "libm.so", "libstdc++.so", "libgcc_s.so"})
    if (base.compare(0, std::strlen(lib), lib) == 0 && !parent_dir(n).empty())
      static_cast<std::vector<std::string> *>(data)->push_back(parent_dir(n));
  return 0;
}

// What the compiler reads besides the shim and its build folder, measured
// with strace on Debian's clang-19: its own installation (binaries,
// libLLVM, compiler-rt), the dynamic loader and its cache, the shared
// libraries of clang and ld (the C library's folder), the linker, and the
// C library and GCC runtime it links against (the folder GCC's files are
// found in is listed too). Asked of the compiler once, then kept in the
// cache folder under its identity.
std::vector<std::string> toolchain_paths(const std::string &cxx, bool rt, const std::string &tmp,
                                         const std::string &cache) {
  std::string id = compiler_identity(cxx);
  std::string memo = cache + "/toolchain-" + id, text;
  std::vector<std::string> out;
  if (!id.empty() && read_file(memo, &text)) {
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      if (end > start) out.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    if (!out.empty()) return out;
  }
  auto add = [&](const std::string &p) {
    if (!p.empty() && p[0] == '/' && access(p.c_str(), F_OK) == 0 &&
        std::find(out.begin(), out.end(), p) == out.end())
      out.push_back(p);
  };
  auto ask = [&](std::vector<std::string> args) {
    args.insert(args.begin(), cxx);
    return trim(command_output(args, tmp));
  };
  add(cxx);
  char *real = realpath(cxx.c_str(), nullptr);
  std::string clang = real ? real : cxx;
  std::free(real);
  add(parent_dir(parent_dir(clang))); // /usr/lib/llvm-19
  add(elf_interpreter(clang));
  add(ask({"-print-resource-dir"}));
  std::string ld = ask({"-print-prog-name=ld"});
  add(ld);
  if (char *r = realpath(ld.c_str(), nullptr)) {
    add(elf_interpreter(r));
    std::free(r);
  }
  for (const char *lib : {"libc.so", "libm.so", "libc_nonshared.a"})
    add(parent_dir(ask({std::string("-print-file-name=") + lib})));
  for (const char *lib : {"libgcc_s.so", "libgcc.a"}) // .../gcc/<triple>/<version>/libgcc.a
    add(parent_dir(parent_dir(ask({std::string("-print-file-name=") + lib}))));
  if (rt) add(parent_dir(ask({"-rtlib=compiler-rt", "-print-libgcc-file-name"})));
  std::vector<std::string> libs;
  dl_iterate_phdr(runtime_dirs, &libs);
  for (const std::string &d : libs) add(d);
  add("/etc/ld.so.cache");
  std::string lines;
  for (const std::string &p : out) lines += p + "\n";
  if (!id.empty()) write_memo(memo, lines);
  return out;
}

// Under `how`: a small library compiles and links (with compiler-rt and
// libm), and a file next to the build folder cannot be read.
// "" if the confinement works here, else why not.
std::string try_sandbox(const Compiler &c, Confinement how) {
  std::string dir = c.cache_dir + "/tmp/sandbox-XXXXXX";
  if (!mkdtemp(&dir[0])) return "cannot create a folder in " + c.cache_dir;
  std::string outside = dir + ".outside";
  write_file(outside, "#error MB_PROBE_READ_OUTSIDE\n");
  // (Not the shim's headers: what they include is not the toolchain's business.)
  write_file(dir + "/probe.cpp", "extern \"C\" float __mb_probe(float x) "
                                 "{ return __builtin_expf(x); }\n");
  write_file(dir + "/outside.cpp", "#include \"" + outside + "\"\n");
  std::vector<std::string> base = {c.cxx, "-x", "c++", "-std=c++17", "-nostdinc", "-nostdinc++",
                                   "-isystem", c.shim_dir};
  if (std::atoi(c.version.c_str()) >= 16) base.insert(base.begin() + 1, "--no-default-config");
  std::vector<std::string> build = base, peek = base;
  build.insert(build.end(), {"-O2", "-fPIC", "-shared", "-nostdlib++", "-nostartfiles",
                             "-Wl,--no-undefined", "-Wl,-z,relro", "-Wl,-z,now", "-o", "probe.so",
                             "probe.cpp", "-lm"});
  if (c.compiler_rt) build.push_back("-rtlib=compiler-rt");
  peek.insert(peek.end(), {"-fsyntax-only", "outside.cpp"});
  std::vector<std::string> read = c.toolchain;
  read.push_back(c.shim_dir);
  const ConfinePlan plan{read, dir};
  std::string text, why;
  ProcessResult r = run_confined(how, plan, c.bwrap, build, dir, dir + "/out", dir + "/err", 60000);
  read_file(dir + "/err", &text);
  text = trim(text);
  if (!r.started) why = r.error;
  else if (r.timed_out) why = "the probe compile timed out";
  else if (r.exit_code != 0 || access((dir + "/probe.so").c_str(), R_OK) != 0)
    why = "the probe compile failed (" + text.substr(0, text.find('\n')) + ")";
  if (why.empty()) {
    r = run_confined(how, plan, c.bwrap, peek, dir, dir + "/out", dir + "/err", 60000);
    read_file(dir + "/err", &text);
    if (!r.started) why = r.error;
    else if (r.exit_code == 0 || text.find("MB_PROBE_READ_OUTSIDE") != std::string::npos)
      why = "the compiler could still read a file outside its folder";
  }
  remove_tree(dir);
  unlink(outside.c_str());
  return why;
}

// The strongest confinement that works here, or the one asked for.
bool choose_sandbox(Compiler *c, std::string *err) {
  const char *asked = std::getenv("MB_SIM_COMPILE_SANDBOX");
  std::string forced = asked ? asked : "";
  Confinement want = Confinement::None;
  if (!forced.empty() && !confinement_from_name(forced, &want)) {
    *err = "MB_SIM_COMPILE_SANDBOX=" + forced +
           " is not a compile sandbox; use landlock, bubblewrap, namespaces or none (or unset it)";
    return false;
  }
  c->bwrap = find_on_path("bwrap");
  std::vector<Confinement> offered = offered_confinements(c->bwrap);
  c->sandbox_note.clear();
  for (Confinement how : offered) {
    if (!forced.empty() && how != want) continue;
    std::string why;
    if (how != Confinement::None) {
      // Memo per compiler, toolchain, confinement, Landlock ABI and this
      // library (a rebuilt simulator probes again).
      Sha256 h;
      h.field(c->self_hash);
      h.field(compiler_identity(c->cxx));
      for (const std::string &p : c->toolchain) h.field(p);
      h.field(confinement_name(how));
      h.field(std::to_string(landlock_abi()) + c->bwrap + c->shim_dir);
      std::string memo = c->cache_dir + "/sandbox-" + h.hex().substr(0, 16), text;
      if (read_file(memo, &text) && !text.empty()) {
        why = text == "ok\n" ? "" : trim(text);
      } else {
        why = try_sandbox(*c, how);
        write_memo(memo, why.empty() ? "ok\n" : why + "\n");
      }
    }
    if (why.empty()) {
      c->sandbox = how;
      return true;
    }
    c->sandbox_note += std::string(c->sandbox_note.empty() ? "" : "; ") + confinement_name(how) +
                       ": " + why;
  }
  *err = "MB_SIM_COMPILE_SANDBOX=" + forced + " does not work here (" +
         (c->sandbox_note.empty() ? std::string("not available") : c->sandbox_note) +
         "); unset it to use the strongest sandbox that works";
  return false;
}

const char *compile_sandbox(const Compiler &c) { return confinement_name(c.sandbox); }

bool setup_compiler(const std::string &requested, Compiler *out, std::string *err) {
  std::string tmp = out->cache_dir + "/tmp";
  if (!mkdirs(tmp)) {
    *err = "cannot create the simulator's cache folder " + out->cache_dir +
           "; pass cache_dir=<writable folder>";
    return false;
  }
  if (access((out->shim_dir + "/metal_stdlib").c_str(), R_OK) != 0) {
    *err = "the simulator's metal_stdlib shim is not in " + out->shim_dir +
           "; pass shim_dir=<ffi/sim/include>";
    return false;
  }
  out->shim_hash = hash_dir(out->shim_dir);
  {
    static std::string self; // the library's own content, hashed once per process
    static std::once_flag once;
    std::call_once(once, [] {
      Dl_info info;
      std::string bytes;
      if (dladdr(reinterpret_cast<void *>(&compile_kernel), &info) && info.dli_fname &&
          read_file(info.dli_fname, &bytes)) {
        Sha256 h;
        h.field(bytes);
        self = h.hex();
      }
    });
    out->self_hash = self;
  }
  // The compiler and its sandbox are found once per process, compiler name,
  // shim folder and sandbox asked for.
  static std::mutex mu;
  static std::map<std::string, Compiler> found;
  std::lock_guard<std::mutex> lock(mu);
  const char *asked = std::getenv("MB_SIM_COMPILE_SANDBOX");
  std::string key = requested + "\n" + out->shim_dir + "\n" + (asked ? asked : "");
  auto hit = found.find(key);
  if (hit != found.end()) {
    out->cxx = hit->second.cxx;
    out->version = hit->second.version;
    out->compiler_rt = hit->second.compiler_rt;
    out->sandbox = hit->second.sandbox;
    out->toolchain = hit->second.toolchain;
    out->bwrap = hit->second.bwrap;
    out->sandbox_note = hit->second.sandbox_note;
    return true;
  }
  std::vector<std::string> names;
  if (!requested.empty()) names.push_back(requested);
  else names = {"clang++-19", "clang++-20", "clang++-21", "clang++-18", "clang++-17",
                "clang++-16", "clang++-15", "clang++"};
  for (const auto &n : names) {
    std::string path = find_on_path(n);
    if (path.empty()) continue;
    Probe probe = probe_compiler(path, tmp, out->cache_dir);
    if (probe.major < 15) continue;
    out->cxx = path;
    out->version = probe.version;
    out->compiler_rt = probe.compiler_rt;
    break;
  }
  if (out->cxx.empty()) {
    *err = requested.empty() ? std::string("no clang++ 15 or newer found for the simulator; ") +
                                   kFixCompiler
                             : "cxx=" + requested + " is not clang++ 15 or newer; " + kFixCompiler;
    return false;
  }
  out->toolchain = toolchain_paths(out->cxx, out->compiler_rt, tmp, out->cache_dir);
  if (!choose_sandbox(out, err)) return false;
  found[key] = *out;
  return true;
}

CompileResult compile_kernel(const Compiler &c, const CompileRequest &req) {
  const bool allow_libc = c.allow_libc || std::getenv("MB_SIM_TEST_ALLOW_LIBC");
  const std::string &fn = req.function;
  if (fn.empty() || fn.size() > 256 || fn.find_first_of("\"\\\n") != std::string::npos)
    return fail(MB_E_COMPILE, "'" + fn + "' is not a valid kernel function name", "");
  std::string name = file_name(req.source_name);

  // Untrusted source: every include must stay within the kernel's folder.
  std::vector<UserFile> headers;
  std::string err;
  std::string bad = req.include_dir.empty()
                        ? check_includes(req.source, name)
                        : collect_included_files(req.include_dir, req.source, name, &headers, &err);
  if (!err.empty()) return fail(MB_E_COMPILE, err, "");
  if (!bad.empty()) return fail(MB_E_COMPILE, "kernel '" + fn + "' did not compile:\n" + bad, "");

  std::vector<std::string> texts = {req.source};
  for (const UserFile &h : headers) texts.push_back(h.text);
  Prepass pre = prepass_msl(texts, parse_constants(req.function_constants));
  if (!pre.error.empty()) return fail(MB_E_COMPILE, pre.error, "");
  const std::string source = wrap_source(pre.texts[0], name);
  for (size_t i = 0; i < headers.size(); ++i) headers[i].text = pre.texts[i + 1];

  Sha256 key;
  for (const std::string &f : common_flags(c, req, pre.defines)) key.field(f);
  key.field(kCacheVersion);
  key.field(std::to_string(MB_SIM_RT_ABI));
  key.field(c.version);
  key.field(c.shim_hash);
  key.field(c.self_hash);
  key.field(c.compiler_rt ? "rt" : "no-rt");
  // What the compiler could read differs by sandbox: no cached result of a
  // weaker one serves a stronger one.
  key.field(compile_sandbox(c));
  key.field(allow_libc ? "libc" : "");
  key.field(fn);
  key.field(name);
  for (const UserFile &h : headers) {
    key.field(h.path);
    key.field(h.text);
  }
  key.field(source);
  CompileResult res;
  res.so_path = c.cache_dir + "/" + key.hex() + ".so";
  if (access(res.so_path.c_str(), R_OK) == 0) {
    res.cache_hit = true;
    return res;
  }

  std::string tmp = c.cache_dir + "/tmp/build-XXXXXX";
  if (!mkdtemp(&tmp[0]))
    return fail(MB_E_COMPILE, "cannot create a build folder in " + c.cache_dir, "");
  if (!write_file(tmp + "/" + name, source))
    return fail(MB_E_COMPILE, "cannot write " + tmp + "/" + name, tmp);
  for (const UserFile &h : headers) {
    std::string path = tmp + "/inc/" + h.path;
    if (!mkdirs(path.substr(0, path.find_last_of('/'))) || !write_file(path, h.text))
      return fail(MB_E_COMPILE, "cannot write " + path, tmp);
  }

  // Every clang run: confined to the toolchain, the shim and this folder.
  std::vector<std::string> readable = c.toolchain;
  readable.push_back(c.shim_dir);
  readable.push_back(c.cache_dir + "/pch"); // the shim, precompiled (shim_pch)
  const ConfinePlan plan{readable, tmp};
  const DiagnosticScope scope{tmp, c.shim_dir};
  // Each run lists the files it read (-MD): messages of a run that read a
  // file outside show no text (diagnostics.h).
  auto run_clang = [&](std::vector<std::string> args, const char *out, const char *errf) {
    args.insert(args.end(), {"-MD", "-MF", std::string(errf) + ".d"});
    return run_confined(c.sandbox, plan, c.bwrap, args, tmp, tmp + "/" + out, tmp + "/" + errf,
                        c.timeout_ms);
  };
  auto messages = [&](const char *errf) {
    std::string text, deps;
    read_file(tmp + "/" + errf, &text);
    read_file(tmp + "/" + errf + ".d", &deps);
    // the precompiled shim is the shim
    for (size_t at; (at = deps.find(c.cache_dir + "/pch/")) != std::string::npos;)
      deps.erase(at, deps.find_first_of(" \n\\", at) - at);
    return trim(clean_diagnostics(text, scope, read_outside(deps, scope)));
  };

  // Pass 1: check the source, and dump the AST of the user's code. Code
  // that is MSL but not C++ as written (a vector comparison assigned to a
  // boolN) fails here yet dumps its AST with the parts in question intact:
  // the edits then make it C++, which pass 1b checks.
  const std::string check_pch = shim_pch(c, req, {});
  std::vector<std::string> argv = common_flags(c, req, pre.defines);
  use_pch(&argv, check_pch);
  argv.insert(argv.end(), {"-x", "clcpp", "-fsyntax-only", "-ferror-limit=0", "-Xclang",
                           "-ast-dump=json", "-Xclang", "-ast-dump-filter=__mbu", name});
  ProcessResult r = run_clang(argv, "ast.json", "ast.err");
  res.compiler_runs++;
  std::string json;
  if (!r.started) return fail(MB_E_UNAVAILABLE, r.error, tmp);
  if (r.timed_out)
    return fail(MB_E_COMPILE, "compiling kernel '" + fn + "' took longer than " +
                                  std::to_string(c.timeout_ms / 1000) + " s; stopped",
                tmp);
  const std::string pass1_errors = messages("ast.err");
  auto did_not_compile = [&](const std::string &msg) {
    return fail(MB_E_COMPILE, "kernel '" + fn + "' did not compile:\n" + user_paths(msg), tmp);
  };

  std::vector<SourceFile> files = {{name, &source, name, kWrapLines}};
  for (const UserFile &h : headers) files.push_back({"inc/" + h.path, &h.text, h.path, 0});
  KernelAst ast;
  read_file(tmp + "/ast.json", &json);
  // wrap_source ends with "}\n": the namespace's closing brace.
  AstResult a = analyze_kernel_ast(json, files, source.size() - 2, fn, &ast, &err);
  // The analysis speaks first: where it refuses a declaration (a threadgroup
  // variable outside the kernel, say), clang's message about the same line
  // would only say that C++ for OpenCL has no such thing.
  if (a == AstResult::Error) return fail(MB_E_COMPILE, "kernel '" + fn + "': " + err, tmp);
  // A wrong name before compile errors: the file's other kernels may not
  // compile without the edits that only the named kernel gets.
  if (a == AstResult::NotFound) {
    std::string found;
    for (const auto &k : ast.kernels) found += (found.empty() ? "" : ", ") + k;
    return fail(MB_E_COMPILE,
                "no kernel function '" + fn + "' in " + name +
                    (found.empty() ? "" : " (kernels in the file: " + found + ")"),
                tmp);
  }
  if (r.exit_code != 0 && (a != AstResult::Ok || ast.edits.empty()))
    return did_not_compile(pass1_errors);
  for (const SourceFile &f : files) {
    auto e = ast.edits.find(f.name);
    if (e != ast.edits.end() && !write_file(tmp + "/" + f.name, apply_edits(*f.text, e->second)))
      return fail(MB_E_COMPILE, "cannot write the build folder " + tmp, tmp);
  }
  if (r.exit_code != 0) {
    // Pass 1b: the edited source must compile now.
    argv = common_flags(c, req, pre.defines);
    use_pch(&argv, check_pch);
    argv.insert(argv.end(), {"-x", "clcpp", "-fsyntax-only", name});
    r = run_clang(argv, "check.out", "check.err");
    res.compiler_runs++;
    if (!r.started) return fail(MB_E_UNAVAILABLE, r.error, tmp);
    if (r.timed_out || r.exit_code != 0) return did_not_compile(messages("check.err"));
  }

  // Pass 2: the edited sources plus the entry glue, as a shared object.
  if (!write_file(tmp + "/__mb_entry.cpp", entry_file(name, ast, defined_macros(pre.texts))))
    return fail(MB_E_COMPILE, "cannot write the build folder " + tmp, tmp);
  const std::vector<std::string> codegen = {
      "-O2", "-fPIC", "-fvisibility=hidden",
      // misaligned loads and stores report through the runner
      "-fsanitize=alignment", "-fno-sanitize-recover=alignment",
      // an index outside a fixed-size array (a thread's float x[8])
      "-fsanitize=array-bounds", "-fno-sanitize-recover=array-bounds"};
  argv = common_flags(c, req, pre.defines);
  use_pch(&argv, shim_pch(c, req, codegen));
  argv.insert(argv.end(), codegen.begin(), codegen.end());
  argv.insert(argv.end(),
              {"-shared", "-nostdlib++",
               // loading the kernel must run none of its code (see elf_check.h)
               "-nostartfiles",
               "-Wl,--no-undefined", "-Wl,-z,noexecstack",
               // what the loader relocates becomes read-only: writable memory
               // is then only .data/.bss, which elf_check.h checks
               "-Wl,-z,relro", "-Wl,-z,now", "-o", "kernel.so", "-x", "clcpp", "__mb_entry.cpp",
               "-lm"});
  if (c.compiler_rt) argv.push_back("-rtlib=compiler-rt");
  r = run_clang(argv, "build.out", "build.err");
  res.compiler_runs++;
  if (!r.started) return fail(MB_E_UNAVAILABLE, r.error, tmp);
  if (r.timed_out || r.exit_code != 0)
    return fail(MB_E_COMPILE,
                "kernel '" + fn + "' did not build" +
                    (r.timed_out ? " within the time limit"
                                 : ":\n" + user_paths(messages("build.err"))),
                tmp);
  std::string refused = check_built(tmp + "/kernel.so", fn, allow_libc);
  if (!refused.empty()) return fail(MB_E_COMPILE, refused, tmp);
  // Two processes may build the same kernel at once: rename is atomic.
  if (rename((tmp + "/kernel.so").c_str(), res.so_path.c_str()) != 0)
    return fail(MB_E_COMPILE, "cannot store the compiled kernel in " + c.cache_dir, tmp);
  if (!std::getenv("MB_SIM_KEEP_BUILD")) remove_tree(tmp); // kept: for debugging the shim
  return res;
}

} // namespace mbsim
