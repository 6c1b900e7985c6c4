// The compile step: MSL source -> kernel.so, with a cache keyed by content.
//
// 1. include checks, then the user's headers are copied into the build
// folder (include_check.h); 2. pre-pass (msl_source.h); the source goes into
// namespace __mbu; 3. clang -fsyntax-only with a JSON AST dump of that
// namespace: compile errors surface here with the user's file:line; 4. edits
// from the AST (threadgroup arena, MSL vector semantics; kernel_ast.h);
// 5. an entry file that binds buffers and thread positions to the kernel's
// parameters; 6. clang -O2 -shared, alignment-checked, with no start files
// (loading runs none of its code); 7. rename into the cache.
#pragma once

#include <string>

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
};

// Finds clang++ >= 15 (`requested` if given) and checks the shim folder.
// False with a one-line message saying how to fix it.
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
