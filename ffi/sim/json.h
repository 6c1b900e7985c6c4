// A small JSON reader for clang's AST dump (-ast-dump=json): a DOM that
// keeps object keys in document order (clang prints a location's "file"
// only when it changes, so order carries meaning).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace mbsim {

struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool boolean = false;
  std::string text; // String: the value; Number: its literal text
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;

  const Json *get(const char *key) const;
  std::string str(const char *key) const; // "" unless a string member
  long long num(const char *key, long long dflt) const;
};

// Parses one or more JSON values written one after another (clang writes one
// per matching declaration). False with *err on malformed input.
bool parse_json_values(const std::string &text, std::vector<Json> *out, std::string *err);

} // namespace mbsim
