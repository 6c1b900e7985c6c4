// Source-level steps of compiling MSL as C++: a pre-pass for the spellings
// that C++ lacks, and text edits at offsets the AST dump reports.
#pragma once

#include <string>
#include <vector>

namespace mbsim {

struct Edit {
  size_t offset;
  size_t remove;
  std::string insert;
};

struct Prepass {
  std::string text;
  std::vector<std::string> defines; // -D options mapping attribute names to the shim
};

// Maps MSL attributes ([[buffer(0)]], [[thread_position_in_grid]]) to the
// shim's __mb_a_<name> macros: by -D options, or, for a name that the source
// also uses otherwise (a parameter named like an attribute), by renaming it
// inside [[...]]. Writes half literals (1.5h) as C++ does (1.5f16). Other
// lines are untouched, so diagnostics quote the user's source.
Prepass prepass_msl(const std::string &src);

// The names written after `kernel` (for "no such kernel; found: ...").
std::vector<std::string> kernel_names(const std::string &src);

// Applies edits at distinct offsets of src (any order given).
std::string apply_edits(std::string src, std::vector<Edit> edits);

} // namespace mbsim
