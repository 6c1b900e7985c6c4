// The compile step: MSL source -> cached kernel.so (see compile.h).
#include "compile.h"

#include "../bridge.h"
#include "include_check.h"
#include "kernel_ast.h"
#include "mb_sim_abi.h"
#include "msl_source.h"
#include "process.h"
#include "sha256.h"

#include <dirent.h>
#include <dlfcn.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <cstdlib>
#include <regex>

namespace mbsim {

namespace {

// Bumped whenever the generated code or the flags change meaning.
constexpr const char *kCacheVersion = "mbsim-cache-2";

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
  ProcessResult r = run_process(argv, "", out, err, 20000);
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

// Content hash of the regular files directly in `dir` (sorted by name).
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
      c.cxx, "-std=c++17", "-nostdinc", "-nostdinc++", "-isystem", c.shim_dir,
      "-include", "metal_stdlib", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics",
      "-fno-strict-aliasing", "-fno-math-errno", "-ffp-contract=off",
      // MSL has no implicit conversions between vector types
      "-flax-vector-conversions=none",
      // half and bfloat arithmetic rounds after every operation, as on a GPU
      "-Xclang", "-ffloat16-excess-precision=none", "-Xclang", "-fbfloat16-excess-precision=none",
      "-fno-color-diagnostics", "-fmessage-length=0", "-Wno-ignored-attributes",
      "-Wno-duplicate-decl-specifier", "-Wno-unknown-attributes",
      "-D__METAL_VERSION__=" + std::to_string(major * 100 + minor * 10), "-D__METAL__=1",
      "-D__HAVE_BFLOAT__=1", "-D__METALBENCH_SIM__=1"};
#if defined(__x86_64__)
  // Hardware fma and half conversions where the CPU has them (kernels run
  // on this machine; the flag is part of the cache key). Results are the
  // same either way: fma is exact, conversions round the same.
  if (__builtin_cpu_supports("x86-64-v3")) f.push_back("-march=x86-64-v3");
#endif
  f.insert(f.end(), defines.begin(), defines.end());
  // The user's headers, copied into the build folder's inc/.
  if (!req.include_dir.empty()) {
    f.push_back("-I");
    f.push_back("inc");
  }
  return f;
}

// The user's code goes into namespace __mbu (one line of ours, then a
// #line so that messages keep the user's lines).
std::string wrap_source(const std::string &text, const std::string &name) {
  return "namespace __mbu {\n#line 1 \"" + name + "\"\n" + text + "\n}\n";
}
constexpr unsigned kWrapLines = 2;

std::string entry_file(const std::string &source_file, const KernelAst &ast) {
  size_t n = ast.params.size();
  std::string s;
  s += "// Generated by the MetalBench simulator: binds the kernel to the runner.\n";
  s += "#include \"" + source_file + "\"\n#include <mb_sim_entry.h>\n";
  s += "namespace __mbu {\n";
  s += "using __mb_F = decltype(&" + ast.callable + ");\n";
  s += "static_assert(::__mb::fn<__mb_F>::arity == " + std::to_string(n) +
       ", \"kernel signature changed between compile passes\");\n";
  s += "static const mb_param __mb_params[" + std::to_string(n ? n : 1) + "] = {\n";
  for (size_t i = 0; i < n; ++i) {
    const ParamBinding &p = ast.params[i];
    s += "  {" + std::to_string(p.kind) + ", " + std::to_string(p.index) +
         ", ::__mb::min_bytes<::__mb::arg_t<__mb_F, " + std::to_string(i) + ">>(), \"" + p.name +
         "\"},\n";
  }
  s += "};\n";
  s += "static void __mb_run(const mb_dispatch *d, const mb_group *g, mb_cursor *c) {\n"
       "  (void)d; (void)g;\n"
       "  ::__mb::run_threads(c, [&](const mb_thread *t) {\n"
       "    (void)t;\n    " +
       ast.callable + "(";
  for (size_t i = 0; i < n; ++i) {
    const ParamBinding &p = ast.params[i];
    std::string type = "::__mb::arg_t<__mb_F, " + std::to_string(i) + ">";
    std::string idx = std::to_string(p.index);
    if (i) s += ",";
    s += "\n        ";
    if (p.kind == MB_PARAM_BUFFER)
      s += "::__mb::bind_memory<" + type + ">(d->buffers[" + idx + "])";
    else if (p.kind == MB_PARAM_THREADGROUP)
      s += "::__mb::bind_memory<" + type + ">(g->threadgroup_args[" + idx + "])";
    else s += "::__mb::bind_position<" + type + ">(::__mb::position<" + idx + ">(d, g, t))";
  }
  s += ");\n  });\n}\n} // namespace __mbu\n";
  s += "MB_SIM_EXPORT const mb_kernel_info mb_kernel_info_v = {\n"
       "    MB_SIM_RT_ABI, " +
       std::to_string(n) + ", ::__mbu::__mb_params, " + std::to_string(ast.max_total_threads) +
       ", 0,\n"
       "    __start_mb_tg, __stop_mb_tg, __start_mb_sync, __stop_mb_sync,\n"
       "    &mb_kernel_rt, mb_kernel_tg_offsets};\n";
  s += "MB_SIM_EXPORT void mb_kernel_run(const mb_dispatch *d, const mb_group *g, mb_cursor *c) "
       "{\n  ::__mbu::__mb_run(d, g, c);\n}\n";
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
  if (!tmp.empty()) remove_tree(tmp);
  CompileResult r;
  r.status = status;
  r.message = std::move(message);
  return r;
}

} // namespace

// What running a compiler tells: its version, and whether compiler-rt's
// builtins are installed (__bf16 arithmetic needs libclang-rt-<n>-dev).
struct Probe {
  int major = 0;
  std::string version;
  bool compiler_rt = false;
};

// Probing runs clang twice (~150 ms), so the answer is kept in the cache
// folder under the compiler file's identity (path, inode, size, mtime): a
// reinstalled or upgraded compiler is probed again.
Probe probe_compiler(const std::string &path, const std::string &tmp, const std::string &cache) {
  Probe p;
  struct stat st;
  std::string memo;
  if (stat(path.c_str(), &st) == 0) {
    Sha256 h;
    h.field(path);
    h.field(std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
            std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec));
    memo = cache + "/compiler-" + h.hex().substr(0, 16);
    std::string text;
    char version[64] = {0};
    int rt = 0;
    // A memo without compiler-rt is probed again: the package may be installed since.
    if (read_file(memo, &text) &&
        std::sscanf(text.c_str(), "%d %63s %d", &p.major, version, &rt) == 3 && rt == 1) {
      p.version = version;
      p.compiler_rt = rt != 0;
      return p;
    }
  }
  if (!clang_version(path, tmp, &p.major, &p.version)) return Probe{};
  std::string rt_path =
      trim(command_output({path, "-rtlib=compiler-rt", "-print-libgcc-file-name"}, tmp));
  p.compiler_rt = !rt_path.empty() && access(rt_path.c_str(), R_OK) == 0;
  if (!memo.empty()) {
    // Written whole and renamed: a concurrent reader sees the old answer or the new one.
    std::string part = memo + "." + std::to_string(getpid()) + ".part";
    std::string line = std::to_string(p.major) + " " + p.version + " " +
                       (p.compiler_rt ? "1" : "0") + "\n";
    if (write_file(part, line) && rename(part.c_str(), memo.c_str()) != 0) unlink(part.c_str());
  }
  return p;
}

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
  // The compiler probe runs once per process and requested name.
  static std::mutex mu;
  static std::map<std::string, Compiler> found;
  std::lock_guard<std::mutex> lock(mu);
  auto hit = found.find(requested);
  if (hit != found.end()) {
    out->cxx = hit->second.cxx;
    out->version = hit->second.version;
    out->compiler_rt = hit->second.compiler_rt;
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
  found[requested] = *out;
  return true;
}

CompileResult compile_kernel(const Compiler &c, const CompileRequest &req) {
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

  // Pass 1: check the source, and dump the AST of the user's code. Code
  // that is MSL but not C++ as written (a vector comparison assigned to a
  // boolN) fails here yet dumps its AST with the parts in question intact:
  // the edits then make it C++, which pass 1b checks.
  std::vector<std::string> argv = common_flags(c, req, pre.defines);
  argv.insert(argv.end(), {"-x", "c++", "-fsyntax-only", "-ferror-limit=0", "-Xclang",
                           "-ast-dump=json", "-Xclang", "-ast-dump-filter=__mbu", name});
  ProcessResult r = run_process(argv, tmp, tmp + "/ast.json", tmp + "/ast.err", c.timeout_ms);
  res.compiler_runs++;
  std::string text, json;
  read_file(tmp + "/ast.err", &text);
  if (!r.started) return fail(MB_E_UNAVAILABLE, r.error, tmp);
  if (r.timed_out)
    return fail(MB_E_COMPILE, "compiling kernel '" + fn + "' took longer than " +
                                  std::to_string(c.timeout_ms / 1000) + " s; stopped",
                tmp);
  const std::string pass1_errors = trim(text);
  auto did_not_compile = [&](const std::string &msg) {
    return fail(MB_E_COMPILE, "kernel '" + fn + "' did not compile:\n" + user_paths(msg), tmp);
  };

  std::vector<SourceFile> files = {{name, &source, name, kWrapLines}};
  for (const UserFile &h : headers) files.push_back({"inc/" + h.path, &h.text, h.path, 0});
  KernelAst ast;
  read_file(tmp + "/ast.json", &json);
  // wrap_source ends with "}\n": the namespace's closing brace.
  AstResult a = analyze_kernel_ast(json, files, source.size() - 2, fn, &ast, &err);
  if (r.exit_code != 0 && (a != AstResult::Ok || ast.edits.empty()))
    return did_not_compile(pass1_errors);
  if (a == AstResult::NotFound) {
    std::string found;
    for (const auto &k : ast.kernels) found += (found.empty() ? "" : ", ") + k;
    return fail(MB_E_COMPILE,
                "no kernel function '" + fn + "' in " + name +
                    (found.empty() ? "" : " (kernels in the file: " + found + ")"),
                tmp);
  }
  if (a == AstResult::Error) return fail(MB_E_COMPILE, "kernel '" + fn + "': " + err, tmp);
  for (const SourceFile &f : files) {
    auto e = ast.edits.find(f.name);
    if (e != ast.edits.end() && !write_file(tmp + "/" + f.name, apply_edits(*f.text, e->second)))
      return fail(MB_E_COMPILE, "cannot write the build folder " + tmp, tmp);
  }
  if (r.exit_code != 0) {
    // Pass 1b: the edited source must compile now.
    argv = common_flags(c, req, pre.defines);
    argv.insert(argv.end(), {"-x", "c++", "-fsyntax-only", name});
    r = run_process(argv, tmp, tmp + "/check.out", tmp + "/check.err", c.timeout_ms);
    res.compiler_runs++;
    read_file(tmp + "/check.err", &text);
    if (!r.started) return fail(MB_E_UNAVAILABLE, r.error, tmp);
    if (r.timed_out || r.exit_code != 0) return did_not_compile(trim(text));
  }

  // Pass 2: the edited sources plus the entry glue, as a shared object.
  if (!write_file(tmp + "/__mb_entry.cpp", entry_file(name, ast)))
    return fail(MB_E_COMPILE, "cannot write the build folder " + tmp, tmp);
  argv = common_flags(c, req, pre.defines);
  argv.insert(argv.end(),
              {"-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-nostdlib++",
               // loading the kernel must run none of its code (see elf_check.h)
               "-nostartfiles",
               // misaligned loads and stores report through the runner
               "-fsanitize=alignment", "-fno-sanitize-recover=alignment",
               "-Wl,--no-undefined", "-Wl,-z,noexecstack", "-o", "kernel.so", "__mb_entry.cpp",
               "-lm"});
  if (c.compiler_rt) argv.push_back("-rtlib=compiler-rt");
  r = run_process(argv, tmp, tmp + "/build.out", tmp + "/build.err", c.timeout_ms);
  res.compiler_runs++;
  read_file(tmp + "/build.err", &text);
  if (!r.started) return fail(MB_E_UNAVAILABLE, r.error, tmp);
  if (r.timed_out || r.exit_code != 0)
    return fail(MB_E_COMPILE,
                "kernel '" + fn + "' did not build" +
                    (r.timed_out ? " within the time limit" : ":\n" + user_paths(trim(text))),
                tmp);
  // Two processes may build the same kernel at once: rename is atomic.
  if (rename((tmp + "/kernel.so").c_str(), res.so_path.c_str()) != 0)
    return fail(MB_E_COMPILE, "cannot store the compiled kernel in " + c.cache_dir, tmp);
  if (!std::getenv("MB_SIM_KEEP_BUILD")) remove_tree(tmp); // kept: for debugging the shim
  return res;
}

} // namespace mbsim
