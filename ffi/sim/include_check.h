// What kernel source may include. The compiler sees only our shim and the
// headers next to the kernel (include_dir), copied into the build folder:
// -nostdinc keeps system headers out, and every include-like directive must
// name a plain relative path (no absolute path, no `..`, no macro), checked
// here before the compiler reads anything.
#pragma once

#include <string>
#include <vector>

namespace mbsim {

struct UserFile {
  std::string path; // relative to include_dir
  std::string text;
};

// "" if every #include / #include_next / #import / #embed / __has_include in
// `text` names a plain relative path; otherwise "<label>:<line>: ..." saying
// which one and why. The paths named are added to *paths when given.
std::string check_includes(const std::string &text, const std::string &label,
                           std::vector<std::string> *paths = nullptr);

// The headers under `dir` that `source` includes, directly or through each
// other (regular files only, no symlinks; bounded count and size). Only those
// are copied, checked and hashed: the other kernels in the folder neither
// break this one nor invalidate its cache. Returns "" or the first include
// check failure ("<file>:<line>: error: ..."); *err is set if `dir` is unreadable.
std::string collect_included_files(const std::string &dir, const std::string &source,
                                   const std::string &label, std::vector<UserFile> *out,
                                   std::string *err);

} // namespace mbsim
