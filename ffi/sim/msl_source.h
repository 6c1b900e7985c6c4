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
  std::vector<std::string> texts;   // the files, pre-passed
  std::vector<std::string> defines; // -D options mapping attribute names to the shim
  std::string error;                // non-empty: the source cannot be compiled
};

// Function constant values by name or index ("has_bias" -> "true").
using ConstantValues = std::vector<std::pair<std::string, std::string>>;

// Maps MSL attributes ([[buffer(0)]], [[thread_position_in_grid]]) to the
// shim's __mb_a_<name> macros: by -D options, or, for a name that the source
// also uses otherwise (a parameter named like an attribute), by renaming it
// inside [[...]]. Also writes what C++ spells otherwise:
//  - half literals 1.5h as 1.5f16;
//  - static_cast<float4>(i4) as ::__mb::vcast<float4>(i4) (a conversion);
//  - `template [[host_name("x")]] [[kernel]] ...` (C++ allows no attribute
//    list there) with a GNU attribute;
//  - `constant T name [[function_constant(i)]];` with its value (given by
//    name or index, else T's zero) and is_function_constant_defined(name).
// Other lines are untouched, so diagnostics quote the user's source.
// `files`: the kernel's source, then the headers it may include.
Prepass prepass_msl(const std::vector<std::string> &files, const ConstantValues &constants = {});

// Whether `id` names an MSL vector type (float4, uint2, ..., vec).
bool msl_vector_type_name(const std::string &id);

// Every name the files #define (a superset: also in comments or #if'd-out
// code), so that generated code can #undef them: nothing of ours may see a
// kernel's macros (`#define H 4`).
std::vector<std::string> defined_macros(const std::vector<std::string> &files);

// Applies edits at distinct offsets of src (any order given).
std::string apply_edits(std::string src, std::vector<Edit> edits);

} // namespace mbsim
