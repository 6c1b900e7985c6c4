// Compiler messages, cleaned before anyone sees them: they go into errors,
// reports and results files, so they must carry no text of a file outside
// the kernel's own folder (confine.h keeps such files unreadable; this is
// the second net, and the only one where no confinement is available).
//
// A message (an error or warning with its notes and "In file included
// from" lines) that names a file outside the kernel's files and our shim
// becomes one line that still points at the kernel's file and line, with
// no text of that file. Once any message does, the compile has read such a
// file, so no other message keeps its text either. Lines of our shim keep
// file:line and text; compiler and linker summary lines stay; any other
// line is dropped.
#pragma once

#include <string>

namespace mbsim {

struct DiagnosticScope {
  std::string build_dir; // where the compiler ran: the kernel's copies are here
  std::string shim_dir;  // our metal_stdlib shim
};

// Whether a make-style dependency list (clang -MD) names a file outside the
// kernel's files and the shim. Text can come from such a file without any
// message naming it (a macro's string in a static_assert), so a compile
// that read one shows no message text at all.
bool read_outside(const std::string &deps, const DiagnosticScope &scope);

std::string clean_diagnostics(const std::string &text, const DiagnosticScope &scope,
                              bool outside_read = false);

} // namespace mbsim
