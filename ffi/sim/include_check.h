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

// The regular files under `dir` (not following symlinks, skipping hidden
// names; bounded depth, count and size). False with *err if unreadable.
bool collect_user_files(const std::string &dir, std::vector<UserFile> *out, std::string *err);

// "" if every #include / #include_next / #import / #embed / __has_include in
// `text` names a plain relative path; otherwise "<label>:<line>: ..." saying
// which one and why.
std::string check_includes(const std::string &text, const std::string &label);

} // namespace mbsim
