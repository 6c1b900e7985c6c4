// What kernel source may include. The compiler sees only our shim and the
// headers next to the kernel (include_dir), copied into the build folder:
// -nostdinc keeps system headers out, the compiler runs confined
// (confine.h), and, checked here first, before the compiler reads anything:
//  - #include names a plain relative path literally (no absolute path, no
//    `..`, no macro), and so does __has_include(...);
//  - #include_next, #import, #embed, __has_include_next, __has_embed,
//    #line and GNU line markers are refused (not MSL; #line would forge the
//    file names that messages and checks rely on);
//  - #pragma and _Pragma("...") only from an allow-list (no `GCC
//    dependency`, `system_header`, `clang __debug`, sections, aliases ...).
// Spellings count as the compiler reads them: digraphs (%: for #), line
// splices (backslash-newline), comments, raw strings.
#pragma once

#include <string>
#include <vector>

namespace mbsim {

struct UserFile {
  std::string path; // relative to include_dir
  std::string text;
};

// "" if `text` passes the checks above; otherwise "<label>:<line>: error:
// ..." saying which directive and why (the first one). The paths named by
// #include and __has_include are added to *paths when given.
std::string check_includes(const std::string &text, const std::string &label,
                           std::vector<std::string> *paths = nullptr);

// The headers under `dir` that `source` includes, directly or through each
// other (regular files only: no symlink, and none reached through a link
// that leaves `dir`; bounded count and size). Only those
// are copied, checked and hashed: the other kernels in the folder neither
// break this one nor invalidate its cache. Returns "" or the first include
// check failure ("<file>:<line>: error: ..."); *err is set if `dir` is unreadable.
std::string collect_included_files(const std::string &dir, const std::string &source,
                                   const std::string &label, std::vector<UserFile> *out,
                                   std::string *err);

} // namespace mbsim
