// Source-level steps of compiling MSL as C++ (see msl_source.h).
#include "msl_source.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace mbsim {

namespace {

// MSL attributes that the shim defines as __mb_a_<name> macros; the first
// ones take an argument.
const char *const kAttributes[] = {
    "buffer",
    "threadgroup",
    "texture",
    "sampler",
    "max_total_threads_per_threadgroup",
    "stage_in",
    "thread_position_in_grid",
    "thread_position_in_threadgroup",
    "threadgroup_position_in_grid",
    "threads_per_threadgroup",
    "threads_per_grid",
    "threadgroups_per_grid",
    "thread_index_in_threadgroup",
    "thread_index_in_simdgroup",
    "simdgroup_index_in_threadgroup",
    "threads_per_simdgroup",
    "thread_execution_width",
    "simdgroups_per_threadgroup",
    "dispatch_threads_per_threadgroup",
    "dispatch_simdgroups_per_threadgroup",
    "thread_index_in_quadgroup",
    "quadgroup_index_in_threadgroup",
    "quadgroups_per_threadgroup",
    "grid_origin",
};
constexpr int kWithArgument = 5;

int attribute_index(const std::string &id) {
  for (int i = 0; i < static_cast<int>(sizeof kAttributes / sizeof *kAttributes); ++i)
    if (id == kAttributes[i]) return i;
  return -1;
}

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// A tokenizer that knows just enough C++ to skip comments and literals.
class Lexer {
public:
  explicit Lexer(const std::string &s) : s_(s) {}
  enum Kind { End, Ident, Number, Punct, Other };
  struct Token {
    Kind kind;
    size_t begin, end;
  };
  Token next() {
    skip_space();
    size_t b = i_;
    if (i_ >= s_.size()) return {End, b, b};
    char c = s_[i_];
    if (ident_start(c)) {
      // string literal prefixes (u8"..", R"(..)") are identifiers glued to quotes
      while (i_ < s_.size() && ident_char(s_[i_])) ++i_;
      if (i_ < s_.size() && (s_[i_] == '"' || s_[i_] == '\'')) {
        bool raw = s_[i_ - 1] == 'R';
        raw ? skip_raw_string() : skip_quoted(s_[i_]);
        return {Other, b, i_};
      }
      return {Ident, b, i_};
    }
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && i_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_ + 1])))) {
      ++i_;
      while (i_ < s_.size()) {
        char d = s_[i_];
        if ((d == '+' || d == '-') && std::strchr("eEpP", s_[i_ - 1])) ++i_;
        else if (ident_char(d) || d == '.' || d == '\'') ++i_;
        else break;
      }
      return {Number, b, i_};
    }
    if (c == '"' || c == '\'') {
      skip_quoted(c);
      return {Other, b, i_};
    }
    ++i_;
    return {Punct, b, i_};
  }

private:
  void skip_space() {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (std::isspace(static_cast<unsigned char>(c))) ++i_;
      else if (c == '/' && i_ + 1 < s_.size() && s_[i_ + 1] == '/') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else if (c == '/' && i_ + 1 < s_.size() && s_[i_ + 1] == '*') {
        size_t e = s_.find("*/", i_ + 2);
        i_ = e == std::string::npos ? s_.size() : e + 2;
      } else if (c == '\\' && i_ + 1 < s_.size() && s_[i_ + 1] == '\n') {
        i_ += 2;
      } else break;
    }
  }
  void skip_quoted(char q) {
    ++i_;
    while (i_ < s_.size() && s_[i_] != q && s_[i_] != '\n') i_ += s_[i_] == '\\' ? 2 : 1;
    if (i_ < s_.size()) ++i_;
  }
  void skip_raw_string() {
    size_t open = s_.find('(', i_);
    if (open == std::string::npos) {
      i_ = s_.size();
      return;
    }
    std::string close = ")" + s_.substr(i_ + 1, open - i_ - 1) + "\"";
    size_t e = s_.find(close, open);
    i_ = e == std::string::npos ? s_.size() : e + close.size();
  }
  const std::string &s_;
  size_t i_ = 0;
};

} // namespace

Prepass prepass_msl(const std::string &src) {
  constexpr int kCount = sizeof kAttributes / sizeof *kAttributes;
  std::vector<Edit> edits;
  std::vector<size_t> in_attr[kCount]; // offsets of attribute uses
  bool used_elsewhere[kCount] = {};
  used_elsewhere[1] = true; // `threadgroup` is also the address space
  Lexer lx(src);
  int attr_depth = -1; // bracket depth inside [[ ]], -1 outside
  int paren = 0;
  for (Lexer::Token t = lx.next(); t.kind != Lexer::End; t = lx.next()) {
    std::string text = src.substr(t.begin, t.end - t.begin);
    if (t.kind == Lexer::Punct) {
      char c = text[0];
      if (attr_depth < 0 && c == '[' && t.end < src.size() && src[t.end] == '[') {
        attr_depth = 0;
        paren = 0;
        lx.next(); // the second '['
        continue;
      }
      if (attr_depth >= 0) {
        if (c == '(') ++paren;
        else if (c == ')') --paren;
        else if (c == '[') ++attr_depth;
        else if (c == ']' && attr_depth > 0) --attr_depth;
        else if (c == ']' && t.end < src.size() && src[t.end] == ']') {
          lx.next();
          attr_depth = -1;
        }
      }
      continue;
    }
    if (t.kind == Lexer::Ident) {
      int a = attribute_index(text);
      if (a < 0) continue;
      bool scoped = (t.end + 1 < src.size() && src.compare(t.end, 2, "::") == 0) ||
                    (t.begin >= 2 && src.compare(t.begin - 2, 2, "::") == 0);
      if (attr_depth == 0 && paren == 0 && !scoped) in_attr[a].push_back(t.begin);
      else used_elsewhere[a] = true;
      continue;
    }
    if (t.kind == Lexer::Number && (text.back() == 'h' || text.back() == 'H') &&
        text.compare(0, 2, "0x") != 0 && text.compare(0, 2, "0X") != 0) {
      // MSL half literal 1.5h: C++ spells it 1.5f16.
      bool fractional = text.find_first_of(".eE") != std::string::npos;
      edits.push_back({t.end - 1, 1, fractional ? "f16" : ".0f16"});
    }
  }
  // An attribute name that is also used as a name elsewhere (a parameter
  // called thread_index_in_simdgroup) is renamed where it is an attribute;
  // otherwise a macro on the command line maps it and the line stays as the
  // user wrote it.
  Prepass out;
  for (int a = 0; a < kCount; ++a) {
    std::string name = kAttributes[a], shim = "__mb_a_" + name;
    if (used_elsewhere[a]) {
      for (size_t at : in_attr[a]) edits.push_back({at, 0, "__mb_a_"});
    } else if (a < kWithArgument) {
      out.defines.push_back("-D" + name + "(n)=" + shim + "(n)");
    } else {
      out.defines.push_back("-D" + name + "=" + shim);
    }
  }
  out.text = apply_edits(src, edits);
  return out;
}

std::vector<std::string> kernel_names(const std::string &src) {
  std::vector<std::string> names;
  Lexer lx(src);
  bool after_kernel = false;
  for (Lexer::Token t = lx.next(); t.kind != Lexer::End; t = lx.next()) {
    std::string text = src.substr(t.begin, t.end - t.begin);
    if (t.kind == Lexer::Ident && text == "kernel") {
      after_kernel = true;
      continue;
    }
    if (after_kernel && t.kind == Lexer::Ident && text != "void" && text != "kernel") {
      if (std::find(names.begin(), names.end(), text) == names.end()) names.push_back(text);
      after_kernel = false;
    } else if (after_kernel && t.kind == Lexer::Punct && text != "]") {
      after_kernel = false;
    }
  }
  return names;
}

std::string apply_edits(std::string src, std::vector<Edit> edits) {
  // Back to front, so offsets stay valid; at one offset the edit given first
  // ends up first in the text.
  std::vector<size_t> order(edits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return edits[x].offset != edits[y].offset ? edits[x].offset > edits[y].offset : x > y;
  });
  for (size_t i : order) {
    const Edit &e = edits[i];
    if (e.offset > src.size()) continue;
    src.replace(e.offset, std::min(e.remove, src.size() - e.offset), e.insert);
  }
  return src;
}

} // namespace mbsim
