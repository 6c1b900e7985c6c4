// What the compile step needs from clang's AST dump of the user's code (all
// of it sits in namespace __mbu, which the dump is filtered to):
//  - the kernel: a function marked `kernel`, or a template instantiation
//    named by [[host_name]]; each parameter's binding (from the shim's
//    clang::annotate attributes); [[max_total_threads_per_threadgroup]];
//  - edits that move the kernel's `threadgroup` declarations into the
//    group's shared arena;
//  - edits that give MSL meaning where clang's vector extension differs:
//    vector comparisons and logical operators yield boolN (0/1), a C-style
//    cast between vector types converts, `c ? a : b` with a vector c selects
//    per component;
//  - errors for what the simulator refuses: inline assembly, threadgroup
//    variables outside kernels.
#pragma once

#include "msl_source.h"

#include <map>
#include <string>
#include <vector>

namespace mbsim {

struct ParamBinding {
  int kind = 0;  // MB_PARAM_BUFFER / _THREADGROUP / _ATTR
  int index = 0; // binding index or MB_ATTR_*
  std::string name;
  bool absent = false; // [[function_constant(c)]] with c false
};

struct KernelAst {
  std::vector<ParamBinding> params;
  std::string callable; // the kernel in namespace __mbu: "relu" or "gemm<float, 8>"
  std::map<std::string, std::vector<Edit>> edits; // by file, as the dump names it
  unsigned threadgroup_vars = 0;
  unsigned max_total_threads = 0; // [[max_total_threads_per_threadgroup(n)]]
  std::vector<std::string> kernels; // every kernel name found (for messages)
};

enum class AstResult { Ok, NotFound, Error };

// A file of the user's code: its name as clang names it, its text, how it
// is shown in messages, and how many lines of our own precede the user's.
struct SourceFile {
  std::string name;
  const std::string *text;
  std::string label;
  unsigned lines_before = 0;
};

// `json` is clang's -ast-dump=json -ast-dump-filter=__mbu output; the user's
// code must all lie in the one namespace __mbu that ends at `namespace_end`
// of files[0] (so that no code escapes the checks by closing it).
AstResult analyze_kernel_ast(const std::string &json, const std::vector<SourceFile> &files,
                             size_t namespace_end, const std::string &function, KernelAst *out,
                             std::string *err);

} // namespace mbsim
