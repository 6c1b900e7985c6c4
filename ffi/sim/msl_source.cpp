// Source-level steps of compiling MSL as C++ (see msl_source.h).
#include "msl_source.h"

#include "mb_sim_abi.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace mbsim {

namespace {

// MSL attributes that the shim defines as __mb_a_<name> macros.
struct Attribute {
  const char *name;
  bool argument;
};
const Attribute kAttributes[] = {
    {"buffer", true},
    {"threadgroup", true},
    {"texture", true},
    {"sampler", true},
    {"max_total_threads_per_threadgroup", true},
    {"host_name", true},
    {"function_constant", true},
    {"kernel", false},
    {"stage_in", false},
    {"thread_position_in_grid", false},
    {"thread_position_in_threadgroup", false},
    {"threadgroup_position_in_grid", false},
    {"threads_per_threadgroup", false},
    {"threads_per_grid", false},
    {"threadgroups_per_grid", false},
    {"thread_index_in_threadgroup", false},
    {"thread_index_in_simdgroup", false},
    {"simdgroup_index_in_threadgroup", false},
    {"threads_per_simdgroup", false},
    {"thread_execution_width", false},
    {"simdgroups_per_threadgroup", false},
    {"dispatch_threads_per_threadgroup", false},
    {"dispatch_simdgroups_per_threadgroup", false},
    {"thread_index_in_quadgroup", false},
    {"quadgroup_index_in_threadgroup", false},
    {"quadgroups_per_threadgroup", false},
    {"grid_origin", false},
};
constexpr int kCount = sizeof kAttributes / sizeof *kAttributes;

int attribute_index(const std::string &id) {
  for (int i = 0; i < kCount; ++i)
    if (id == kAttributes[i].name) return i;
  return -1;
}

// MSL vector type names (static_cast<float4>(x) converts).
bool vector_type_name(const std::string &id) {
  static const char *const kBases[] = {"char", "uchar", "short", "ushort", "int",  "uint",
                                       "long", "ulong", "half",  "float",  "bfloat", "bool"};
  if (id == "vec") return true;
  if (id.size() < 2) return false;
  char n = id.back();
  if (n < '2' || n > '4') return false;
  std::string base = id.substr(0, id.size() - 1);
  for (const char *b : kBases)
    if (base == b) return true;
  return false;
}

// A function constant's value: a literal, nothing that could smuggle code.
bool constant_literal(const std::string &v) {
  if (v.empty() || v.size() > 64) return false;
  for (char c : v)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '+' && c != '-' && c != '_')
      return false;
  return true;
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

namespace {

// One file's part of the pre-pass: its edits, and where attribute names
// appear inside [[...]] (renamed later if the name is used otherwise too).
struct FileScan {
  std::vector<Edit> edits;
  std::vector<size_t> in_attr[kCount];
};

bool scan_file(const std::string &src, const ConstantValues &constants, bool *used_elsewhere,
               FileScan *scan, Prepass *out) {
  std::vector<Edit> &edits = scan->edits;
  std::vector<size_t> *in_attr = scan->in_attr;
  Lexer lx(src);
  int attr_depth = -1; // bracket depth inside [[ ]], -1 outside
  int paren = 0;
  int outer_paren = 0; // ( ) depth outside attributes: > 0 in a parameter list
  size_t attr_open = 0;           // offset of the current [[
  bool template_attrs = false;    // attribute lists right after `template`
  std::string prev_ident;         // the identifier before the current [[
  std::string constant_index;     // inside [[function_constant(i)]]: i
  bool in_constant = false;
  Lexer::Token prev{Lexer::End, 0, 0}, prev2{Lexer::End, 0, 0};
  auto is = [&](const Lexer::Token &k, Lexer::Kind kind, const char *text) {
    return k.kind == kind && src.compare(k.begin, k.end - k.begin, text) == 0;
  };
  for (Lexer::Token t = lx.next(); t.kind != Lexer::End; prev2 = prev, prev = t, t = lx.next()) {
    std::string text = src.substr(t.begin, t.end - t.begin);
    if (t.kind == Lexer::Punct) {
      char c = text[0];
      if (attr_depth < 0 && c == '[' && t.end < src.size() && src[t.end] == '[') {
        attr_depth = 0;
        paren = 0;
        attr_open = t.begin;
        std::string before = prev.kind == Lexer::Ident ? src.substr(prev.begin, prev.end - prev.begin) : "";
        template_attrs = before == "template" || (template_attrs && prev.kind == Lexer::Punct &&
                                                  src[prev.begin] == ']');
        // `template [[host_name("x")]] ... f<T>;` (MLX instantiates hundreds
        // of kernels per file): an explicit instantiation *declaration*, so
        // that only the kernel being built is compiled; the generated glue
        // instantiates that one (compile.cpp).
        if (before == "template") edits.push_back({prev.begin, 0, "extern "});
        if (prev.kind == Lexer::Ident) prev_ident = before;
        lx.next(); // the second '['
        continue;
      }
      if (attr_depth < 0 && c == '(') ++outer_paren;
      if (attr_depth < 0 && c == ')' && outer_paren > 0) --outer_paren;
      if (attr_depth >= 0) {
        if (c == '(') ++paren;
        else if (c == ')') --paren;
        else if (c == '[') ++attr_depth;
        else if (c == ']' && attr_depth > 0) --attr_depth;
        else if (c == ']' && t.end < src.size() && src[t.end] == ']') {
          lx.next();
          size_t close = t.end + 1;
          attr_depth = -1;
          if (template_attrs) {
            // C++ has no attribute list after `template`: a GNU attribute
            // carries host_name; [[kernel]] needs nothing.
            std::string inner = src.substr(attr_open + 2, t.begin - attr_open - 2);
            std::string gnu;
            size_t hn = inner.find("host_name");
            if (hn != std::string::npos) {
              size_t open = inner.find('(', hn), shut = inner.rfind(')');
              if (open != std::string::npos && shut != std::string::npos && shut > open)
                gnu = "__attribute__((annotate(\"mb\", " + std::to_string(MB_MARK_HOST_NAME) +
                      ", " + inner.substr(open + 1, shut - open - 1) + ")))";
            }
            edits.push_back({attr_open, close - attr_open, gnu});
          }
          if (in_constant) {
            // constant T name [[function_constant(i)]] = value;
            std::string value = "{}";
            bool defined = false;
            for (const auto &kv : constants)
              if (kv.first == prev_ident || kv.first == constant_index) {
                value = kv.second;
                defined = true;
              }
            if (defined && !constant_literal(value)) {
              out->error = "function constant '" + prev_ident + "': the value '" + value +
                           "' is not a literal";
              return false;
            }
            edits.push_back({close, 0, " = " + value});
            out->defines.push_back("-D__mb_fcdef_" + prev_ident + "=" +
                                   (defined ? "true" : "false"));
            in_constant = false;
          }
        }
        if (in_constant && paren >= 1 && !(c == '(' && paren == 1)) constant_index += text;
      }
      continue;
    }
    if (t.kind == Lexer::Ident) {
      if (attr_depth >= 0 && paren >= 1 && in_constant) constant_index += text;
      if ((text == "thread" || text == "constant") && attr_depth < 0 &&
          (is(prev, Lexer::Punct, ")") ||
           (is(prev, Lexer::Ident, "const") && is(prev2, Lexer::Punct, ")")))) {
        // `f() thread` / `C() const thread`: a member for objects in thread
        // memory. C++ for OpenCL constructs temporaries and return values
        // outside __private, so such a member is written without the
        // qualifier (generic: any object); where the class also has
        // device/threadgroup/constant overloads, those stay more specific.
        // `f() constant` is __constant alone (the macro adds const, which
        // would make a constant member a const one).
        Lexer peek = lx;
        Lexer::Token n = peek.next();
        bool member = (n.kind == Lexer::Punct && std::strchr(":{;=&", src[n.begin])) ||
                      is(n, Lexer::Ident, "const") || is(n, Lexer::Ident, "noexcept") ||
                      (is(n, Lexer::Punct, "-") && n.end < src.size() && src[n.end] == '>');
        if (member) edits.push_back({t.begin, t.end - t.begin, text == "thread" ? "" : "__constant"});
        continue;
      }
      if (text == "thread" && attr_depth < 0) {
        // `const thread T& x`: a reference to thread memory. C++ for OpenCL
        // would not bind it to a temporary (f(a + b)), which MSL does: the
        // reference is written generic. Pointers keep their space.
        Lexer peek = lx;
        int angle = 0;
        for (Lexer::Token n = peek.next(); n.kind != Lexer::End; n = peek.next()) {
          if (n.kind == Lexer::Ident) continue;
          char c = src[n.begin];
          if (c == '<') ++angle;
          else if (c == '>' && angle > 0) --angle;
          else if (angle > 0 || c == ':') continue;
          else {
            if (c == '&') edits.push_back({t.begin, t.end - t.begin, ""});
            break;
          }
        }
        continue;
      }
      if (text == "reinterpret_cast" && attr_depth < 0) {
        // reinterpret_cast<thread T*>(member_array) in a member: `this` is
        // generic here (see above), and C++ for OpenCL refuses the cast
        // between spaces that Metal's one flat view allows.
        Lexer peek = lx;
        Lexer::Token a = peek.next();
        if (a.kind == Lexer::Punct && src[a.begin] == '<')
          edits.push_back({t.begin, t.end - t.begin, "::__mb::reinterp"});
        continue;
      }
      if (text == "static_cast" && attr_depth < 0) {
        // static_cast<float4>(int4): MSL converts; clang refuses.
        Lexer peek = lx;
        Lexer::Token a = peek.next(), b = peek.next(), c2 = peek.next();
        std::string bt = src.substr(b.begin, b.end - b.begin);
        bool closes = c2.kind == Lexer::Punct && src[c2.begin] == '>';
        if (a.kind == Lexer::Punct && src[a.begin] == '<' && b.kind == Lexer::Ident &&
            vector_type_name(bt) && ((c2.kind == Lexer::Punct && (src[c2.begin] == '>' || src[c2.begin] == '<'))))
          edits.push_back({t.begin, t.end - t.begin, "::__mb::vcast"});
        // static_cast<bfloat>(h): MSL converts between half and bfloat;
        // clang refuses (templates' static_cast<T> is the AST step's).
        else if (a.kind == Lexer::Punct && src[a.begin] == '<' && closes &&
                 (bt == "half" || bt == "bfloat" || bt == "bfloat16_t" || bt == "float16_t"))
          edits.push_back({t.begin, t.end - t.begin, "::__mb::fpcast"});
        continue;
      }
      int a = attribute_index(text);
      if (a < 0) continue;
      bool scoped = (t.end + 1 < src.size() && src.compare(t.end, 2, "::") == 0) ||
                    (t.begin >= 2 && src.compare(t.begin - 2, 2, "::") == 0);
      if (attr_depth == 0 && paren == 0 && !scoped) {
        if (!template_attrs) in_attr[a].push_back(t.begin);
        // On a kernel parameter ([[buffer(2), function_constant(has_c)]])
        // it says when the parameter exists: no value to write.
        if (text == "function_constant" && outer_paren == 0) {
          in_constant = true;
          constant_index.clear();
        }
      } else {
        used_elsewhere[a] = true;
      }
      continue;
    }
    if (t.kind == Lexer::Number) {
      if (attr_depth >= 0 && paren >= 1 && in_constant) constant_index += text;
      if ((text.back() == 'h' || text.back() == 'H') && text.compare(0, 2, "0x") != 0 &&
          text.compare(0, 2, "0X") != 0) {
        // MSL half literal 1.5h: C++ spells it 1.5f16.
        bool fractional = text.find_first_of(".eE") != std::string::npos;
        edits.push_back({t.end - 1, 1, fractional ? "f16" : ".0f16"});
      }
    }
  }
  return true;
}

} // namespace

Prepass prepass_msl(const std::vector<std::string> &files, const ConstantValues &constants) {
  Prepass out;
  bool used_elsewhere[kCount] = {};
  used_elsewhere[attribute_index("threadgroup")] = true; // also the address space
  used_elsewhere[attribute_index("kernel")] = true;      // also the function qualifier
  std::vector<FileScan> scans(files.size());
  for (size_t f = 0; f < files.size(); ++f)
    if (!scan_file(files[f], constants, used_elsewhere, &scans[f], &out)) return out;
  // An attribute name that is also used as a name elsewhere (a parameter
  // called thread_index_in_simdgroup) is renamed where it is an attribute;
  // otherwise a macro on the command line maps it and the line stays as the
  // user wrote it.
  for (int a = 0; a < kCount; ++a) {
    std::string name = kAttributes[a].name, shim = "__mb_a_" + name;
    if (used_elsewhere[a]) {
      for (FileScan &scan : scans)
        for (size_t at : scan.in_attr[a]) scan.edits.push_back({at, 0, "__mb_a_"});
    } else if (kAttributes[a].argument) {
      out.defines.push_back("-D" + name + "(n)=" + shim + "(n)");
    } else {
      out.defines.push_back("-D" + name + "=" + shim);
    }
  }
  out.defines.push_back("-Dis_function_constant_defined(name)=__mb_fcdef_##name");
  for (size_t f = 0; f < files.size(); ++f) out.texts.push_back(apply_edits(files[f], scans[f].edits));
  return out;
}

bool msl_vector_type_name(const std::string &id) { return vector_type_name(id); }

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

std::vector<std::string> defined_macros(const std::vector<std::string> &files) {
  std::vector<std::string> out;
  auto blank = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\v' || ch == '\f'; };
  auto ident = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  for (std::string text : files) {
    // Line splices first: `#\\\ndefine X` is still a #define.
    for (size_t at; (at = text.find("\\\n")) != std::string::npos;) text.erase(at, 2);
    for (size_t i = 0; i < text.size();) {
      size_t end = text.find('\n', i);
      if (end == std::string::npos) end = text.size();
      size_t j = i;
      while (j < end && blank(text[j])) ++j;
      if (j < end && text[j] == '#') {
        ++j;
        while (j < end && blank(text[j])) ++j;
        if (text.compare(j, 6, "define") == 0 && j + 6 < end && blank(text[j + 6])) {
          j += 6;
          while (j < end && blank(text[j])) ++j;
          size_t k = j;
          while (k < end && ident(text[k])) ++k;
          if (k > j && !std::isdigit(static_cast<unsigned char>(text[j])))
            out.push_back(text.substr(j, k - j));
        }
      }
      i = end + 1;
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

} // namespace mbsim
