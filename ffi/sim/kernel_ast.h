// What the compile step needs from clang's AST dump of a kernel: each
// parameter's binding (from the shim's clang::annotate attributes) and the
// edits that move kernel-scope `threadgroup` declarations into the group's
// shared arena.
#pragma once

#include "msl_source.h"

#include <string>
#include <vector>

namespace mbsim {

struct ParamBinding {
  int kind = 0;  // MB_PARAM_BUFFER / _THREADGROUP / _ATTR
  int index = 0; // binding index or MB_ATTR_*
  std::string name;
};

struct KernelAst {
  std::vector<ParamBinding> params;
  std::vector<Edit> edits;
  unsigned threadgroup_vars = 0;
  unsigned max_total_threads = 0; // [[max_total_threads_per_threadgroup(n)]]
};

enum class AstResult { Ok, NotFound, Error };

// `json` is clang's -ast-dump=json -ast-dump-filter=<function> output for
// the file `main_file` (as named on clang's command line).
AstResult analyze_kernel_ast(const std::string &json, const std::string &main_file,
                             const std::string &function, KernelAst *out, std::string *err);

} // namespace mbsim
