// Include checks and the user's header files (include_check.h).
#include "include_check.h"

#include "process.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

namespace mbsim {

namespace {

constexpr size_t kMaxFiles = 500;
constexpr off_t kMaxFileBytes = 1 << 20;

// Why an include path may not be used, or nullptr.
const char *bad_path(const std::string &p) {
  if (p.empty()) return "an empty file name";
  if (p[0] == '/') return "an absolute path";
  if (p.find('\\') != std::string::npos || p.find('\0') != std::string::npos)
    return "a backslash or NUL in the file name";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    if (p.compare(start, end - start, "..") == 0) return "a path that leaves the kernel's folder";
    start = end + 1;
  }
  return nullptr;
}

// Pragmas a kernel may use: they tune loops, diagnostics and layout only.
bool allowed_pragma(const std::vector<std::string> &w) {
  if (w.empty()) return true;
  for (const char *ok : {"once", "unroll", "nounroll", "message", "pack", "push_macro", "pop_macro",
                         "region", "endregion", "STDC", "METAL", "unused"})
    if (w[0] == ok) return true;
  std::string second = w.size() > 1 ? w[1] : "";
  if (w[0] == "clang")
    for (const char *ok : {"loop", "diagnostic", "fp", "unroll", "nounroll", "unroll_and_jam",
                           "nounroll_and_jam", "optimize", "max_tokens_here"})
      if (second == ok) return true;
  if (w[0] == "GCC")
    for (const char *ok : {"diagnostic", "warning", "error", "unroll", "ivdep", "poison"})
      if (second == ok) return true;
  return false;
}

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Scans the text as the preprocessor sees it: line splices are removed
// first (a backslash, optional blanks, then a newline; each character keeps
// its original line), and \r\n or \r count as newlines.
std::string real_path(const std::string &p) {
  char *r = realpath(p.c_str(), nullptr);
  std::string s = r ? r : "";
  std::free(r);
  return s;
}

// Whether `path` resolves (all symlinks followed) to a file inside `real_dir`.
bool within(const std::string &real_dir, const std::string &path) {
  std::string r = real_path(path);
  return !real_dir.empty() && r.size() > real_dir.size() + 1 &&
         r.compare(0, real_dir.size() + 1, real_dir + "/") == 0;
}

class Scanner {
public:
  Scanner(const std::string &text, const std::string &label, std::vector<std::string> *paths)
      : label_(label), paths_(paths) {
    unsigned line = 1;
    for (size_t i = 0; i < text.size(); ++i) {
      char c = text[i];
      if (c == '\\') {
        size_t j = i + 1;
        while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\f' ||
                                   text[j] == '\v'))
          ++j;
        if (j < text.size() && (text[j] == '\n' || text[j] == '\r')) {
          if (text[j] == '\r' && j + 1 < text.size() && text[j + 1] == '\n') ++j;
          ++line;
          i = j;
          continue;
        }
      }
      if (c == '\r') {
        if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
        c = '\n';
      }
      t_ += c;
      lines_.push_back(line);
      if (c == '\n') ++line;
    }
    lines_.push_back(line);
  }

  std::string run() {
    while (i_ < t_.size() && err_.empty()) {
      char c = t_[i_];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i_;
      } else if (comment()) {
      } else if (c == '#' || (c == '%' && at(1) == ':')) {
        i_ += c == '#' ? 1 : 2;
        if (at(0) == '#' || (at(0) == '%' && at(1) == ':')) {
          i_ += at(0) == '#' ? 1 : 2; // ## pastes tokens: not a directive
          token("##");
        } else {
          // Checked wherever it stands: a directive may follow a comment
          // that spans lines, and elsewhere only a macro body has `#`.
          directive();
        }
      } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                 (c == '.' && std::isdigit(static_cast<unsigned char>(at(1))))) {
        number(); // 1'000: a digit separator, not a character literal
        token("0");
      } else if (c == '"' || c == '\'') {
        quoted(c);
        token("\"");
      } else if (ident_start(c)) {
        std::string id = ident();
        char q = at(0);
        if (q == '"' && (id == "R" || id == "LR" || id == "uR" || id == "UR" || id == "u8R")) {
          raw();
          token("\"");
        } else if ((q == '"' || q == '\'') && (id == "L" || id == "u" || id == "U" || id == "u8")) {
          quoted(q);
          token("\"");
        } else {
          identifier(id);
          token(id);
        }
      } else {
        token(std::string(1, c));
        ++i_;
      }
    }
    return err_;
  }

private:
  char at(size_t k) const { return i_ + k < t_.size() ? t_[i_ + k] : '\0'; }
  void token(const std::string &t) {
    prev2_ = prev_;
    prev_ = t;
  }
  bool comment() {
    if (t_[i_] != '/') return false;
    if (at(1) == '/') {
      while (i_ < t_.size() && t_[i_] != '\n') ++i_;
      return true;
    }
    if (at(1) == '*') {
      size_t end = t_.find("*/", i_ + 2);
      i_ = end == std::string::npos ? t_.size() : end + 2;
      return true;
    }
    return false;
  }
  void quoted(char q) {
    ++i_;
    while (i_ < t_.size() && t_[i_] != q && t_[i_] != '\n') i_ += t_[i_] == '\\' ? 2 : 1;
    if (i_ < t_.size() && t_[i_] == q) ++i_;
  }
  // R"delim( ... )delim"
  void raw() {
    size_t open = t_.find('(', i_ + 1);
    std::string delim = open == std::string::npos ? "" : t_.substr(i_ + 1, open - i_ - 1);
    if (open == std::string::npos || delim.size() > 16 ||
        delim.find_first_of(" \\)\n\t\"") != std::string::npos) {
      quoted('"'); // not a valid raw string: the compiler rejects it
      return;
    }
    size_t end = t_.find(")" + delim + "\"", open + 1);
    i_ = end == std::string::npos ? t_.size() : end + delim.size() + 2;
  }
  void number() {
    while (i_ < t_.size()) {
      char c = t_[i_];
      bool sign = (c == '+' || c == '-') && i_ > 0 && std::strchr("eEpP", t_[i_ - 1]);
      if (!ident_char(c) && c != '.' && c != '\'' && !sign) break;
      ++i_;
    }
  }
  void skip_blank() {
    while (i_ < t_.size() && t_[i_] != '\n') {
      if (comment()) continue;
      if (!std::isspace(static_cast<unsigned char>(t_[i_]))) break;
      ++i_;
    }
  }
  std::string ident() {
    size_t start = i_;
    while (i_ < t_.size() && ident_char(t_[i_])) ++i_;
    return t_.substr(start, i_ - start);
  }
  // The rest of the directive's line, comments removed, as words.
  std::vector<std::string> words_to_line_end() {
    std::vector<std::string> w;
    while (true) {
      skip_blank();
      if (i_ >= t_.size() || t_[i_] == '\n') break;
      if (ident_char(t_[i_])) w.push_back(ident());
      else if (t_[i_] == '"' || t_[i_] == '\'') {
        size_t s = i_;
        quoted(t_[i_]);
        w.push_back(t_.substr(s, i_ - s));
      } else w.push_back(std::string(1, t_[i_++]));
    }
    return w;
  }
  void directive() {
    skip_blank();
    if (std::isdigit(static_cast<unsigned char>(at(0))))
      return fail("line markers (# <line> \"file\") are not allowed in kernels: they change the "
                  "file names and lines that messages and checks rely on");
    size_t name_at = i_;
    std::string name = ident();
    if (name == "include") {
      skip_blank();
      operand("#include");
    } else if (name == "include_next" || name == "import" || name == "embed" ||
               name == "__include_macros") {
      skip_blank();
      operand("#" + name); // a path that leaves the folder is named as such first
      i_ = name_at;
      fail("#" + name + " is not part of MSL; kernels use #include \"file.h\"");
    } else if (name == "line") {
      fail("#line is not allowed in kernels: it changes the file names and lines that messages "
           "and checks rely on");
    } else if (name == "pragma") {
      std::vector<std::string> w = words_to_line_end();
      if (!allowed_pragma(w)) fail(pragma_refusal("#pragma", w));
    } else if (name == "ifdef" || name == "ifndef" || name == "elifdef" || name == "elifndef") {
      skip_blank();
      token(ident()); // the macro's name is only tested, never expanded
    }
  }
  static std::string pragma_refusal(const std::string &how, const std::vector<std::string> &w) {
    std::string what = w[0] + (w.size() > 1 && (w[0] == "clang" || w[0] == "GCC") ? " " + w[1] : "");
    return how + " " + what +
           " is not allowed in kernels (allowed: once, unroll, nounroll, clang loop/diagnostic/"
           "fp/optimize, GCC diagnostic/warning/error/unroll, message, pack, STDC, METAL)";
  }
  void identifier(const std::string &id) {
    bool has_include = id == "__has_include";
    if (has_include || id == "__has_include_next" || id == "__has_embed") {
      // `defined(__has_include)` and #ifdef only ask whether it exists.
      bool tested = prev_ == "defined" || (prev_ == "(" && prev2_ == "defined");
      skip_blank();
      if (tested) return;
      if (!has_include) return fail(id + " is not part of MSL");
      if (at(0) != '(')
        return fail("__has_include must be written as __has_include(\"file.h\"), not through a "
                    "macro");
      ++i_;
      skip_blank();
      operand("__has_include");
    } else if (id == "_Pragma") {
      // _Pragma("text"): the text is a pragma like any other.
      skip_blank();
      std::string text;
      bool ok = at(0) == '(';
      if (ok) {
        ++i_;
        skip_blank();
        ok = at(0) == '"';
      }
      if (ok) {
        for (++i_; i_ < t_.size() && t_[i_] != '"' && t_[i_] != '\n'; ++i_) {
          if (t_[i_] == '\\' && i_ + 1 < t_.size()) ++i_;
          text += t_[i_];
        }
        ok = at(0) == '"';
        ++i_;
        skip_blank();
        ok = ok && at(0) == ')';
      }
      if (!ok)
        return fail("_Pragma must be written as _Pragma(\"...\") with the pragma spelled out, "
                    "not built by a macro");
      ++i_;
      std::vector<std::string> w = Scanner(text, label_, nullptr).words();
      if (!allowed_pragma(w)) fail(pragma_refusal("_Pragma", w));
    }
  }
  std::vector<std::string> words() { return words_to_line_end(); }
  // The operand of #include / __has_include: "file" or <file>, literally.
  void operand(const std::string &what) {
    char open = at(0);
    char close = open == '"' ? '"' : open == '<' ? '>' : 0;
    if (!close) {
      fail(what + " must name a file literally (\"file.h\"), not through a macro");
      return;
    }
    std::string path;
    for (++i_; i_ < t_.size() && t_[i_] != close && t_[i_] != '\n'; ++i_) path += t_[i_];
    if (paths_) paths_->push_back(path);
    if (const char *why = bad_path(path))
      fail(what + " " + open + path + close + ": " + why +
           " (kernels can include only <metal_stdlib> and headers next to the kernel)");
  }
  void fail(const std::string &msg) {
    if (err_.empty())
      err_ = label_ + ":" + std::to_string(lines_[std::min(i_, t_.size())]) + ": error: " + msg;
  }

  const std::string &label_;
  std::vector<std::string> *paths_;
  std::string t_;
  std::vector<unsigned> lines_;
  size_t i_ = 0;
  std::string prev_, prev2_;
  std::string err_;
};

} // namespace

std::string check_includes(const std::string &text, const std::string &label,
                           std::vector<std::string> *paths) {
  return Scanner(text, label, paths).run();
}

std::string collect_included_files(const std::string &dir, const std::string &source,
                                   const std::string &label, std::vector<UserFile> *out,
                                   std::string *err) {
  out->clear();
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *err = "cannot read the include folder " + dir;
    return "";
  }
  std::string real_dir = real_path(dir);
  std::vector<std::string> pending;
  std::string bad = check_includes(source, label, &pending);
  std::vector<std::string> seen;
  while (bad.empty() && !pending.empty()) {
    std::string path = pending.back();
    pending.pop_back();
    // Paths that failed the check never get here; the rest are plain and relative.
    if (bad_path(path) || std::find(seen.begin(), seen.end(), path) != seen.end()) continue;
    seen.push_back(path);
    std::string full = dir + "/" + path;
    // A regular file (not a link) that stays in the folder when every link
    // on the way is followed (`sub/x.h` with `sub` a link elsewhere does
    // not); anything else is left to the compiler, which finds only the
    // shim's headers or nothing.
    if (lstat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || !within(real_dir, full)) continue;
    if (st.st_size > kMaxFileBytes || out->size() >= kMaxFiles) {
      *err = "the headers included from " + dir + " are too many or too large";
      return "";
    }
    UserFile f{path, ""};
    if (!read_file(full, &f.text)) continue;
    // A header's own quoted includes resolve next to it first, then from the folder.
    std::vector<std::string> more;
    bad = check_includes(f.text, path, &more);
    std::string here = path.find('/') == std::string::npos ? "" : path.substr(0, path.rfind('/') + 1);
    for (const std::string &m : more) {
      if (!here.empty()) pending.push_back(here + m);
      pending.push_back(m);
    }
    out->push_back(std::move(f));
  }
  return bad;
}

} // namespace mbsim
