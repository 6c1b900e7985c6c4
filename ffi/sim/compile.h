// The compile step: MSL source -> kernel.so, with a cache keyed by content.
//
// 1. include checks, then the user's headers are copied into the build
// folder (include_check.h); 2. pre-pass (msl_source.h); the source goes into
// namespace __mbu; 3. clang -fsyntax-only with a JSON AST dump of that
// namespace: compile errors surface here with the user's file:line; 4. edits
// from the AST (threadgroup arena, MSL vector semantics; kernel_ast.h);
// 5. an entry file that binds buffers and thread positions to the kernel's
// parameters; 6. clang -O2 -shared, alignment-checked, with no start files
// (loading runs none of its code); 7. the file is checked (elf_check.h: no
// code run on load, no writable kernel state; it imports only what the shim
// needs: C math and mem*), then renamed into the cache.
//
// Every clang run is confined (confine.h) with an empty environment, and
// its messages are cleaned (diagnostics.h) before anyone sees them.
#pragma once

#include "confine.h"

#include <string>
#include <vector>

namespace mbsim {

struct Compiler {
  std::string cxx;      // clang++ path
  std::string version;  // "19.1.7"
  std::string shim_dir; // holds metal_stdlib
  std::string cache_dir;
  std::string shim_hash; // of the shim headers' content
  std::string self_hash; // of this library's file: a rebuilt simulator recompiles
  bool compiler_rt = false;
  int timeout_ms = 120000;
  // The compiler's confinement (the strongest that works here), what it
  // may read besides the shim and its build folder, and why a stronger
  // one is not in force ("" when it is the strongest).
  Confinement sandbox = Confinement::None;
  std::vector<std::string> toolchain;
  std::string bwrap;
  std::string sandbox_note;
  // Tests of the runner's own sandbox only: kernels may call the C library,
  // which the compile step otherwise refuses. Set by the device option
  // allow_libc=1, or for a whole process by MB_SIM_TEST_ALLOW_LIBC=1.
  bool allow_libc = false;
};

// The compile sandbox in force, for device info and doctor: "landlock",
// "bubblewrap", "namespaces" or "none".
const char *compile_sandbox(const Compiler &c);

// Finds clang++ >= 15 (`requested` if given), checks the shim folder, and
// picks the compile sandbox: MB_SIM_COMPILE_SANDBOX=<name> asks for one
// (an error if it does not work here), else the strongest that does. False
// with a one-line message saying how to fix it.
bool setup_compiler(const std::string &requested, Compiler *out, std::string *err);

struct CompileRequest {
  std::string source;
  std::string function;
  std::string source_name = "kernel.metal";
  std::string include_dir;
  std::string language_version = "3.1";
  std::string function_constants; // "name=value,index=value,..."
};

struct CompileResult {
  int status = 0; // MB_OK or MB_E_*
  std::string message;
  std::string so_path;
  bool cache_hit = false;
  unsigned compiler_runs = 0;
};

CompileResult compile_kernel(const Compiler &c, const CompileRequest &req);

} // namespace mbsim
