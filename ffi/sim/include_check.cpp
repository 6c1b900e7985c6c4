// Include checks and the user's header files (include_check.h).
#include "include_check.h"

#include "process.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
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

class Scanner {
public:
  Scanner(const std::string &text, const std::string &label, std::vector<std::string> *paths)
      : s_(text), label_(label), paths_(paths) {}

  std::string run() {
    bool line_start = true;
    while (i_ < s_.size() && err_.empty()) {
      char c = s_[i_];
      if (c == '\n') {
        ++line_;
        ++i_;
        line_start = true;
      } else if (splice()) {
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        ++i_;
      } else if (comment()) {
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        number(); // 1'000: a digit separator, not a character literal
        line_start = false;
      } else if (c == '"' || c == '\'') {
        quoted(c);
        line_start = false;
      } else if (c == '#' && line_start) {
        ++i_;
        directive();
        line_start = false;
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        std::string id = ident();
        if (id == "__has_include" || id == "__has_include_next" || id == "__has_embed") {
          skip_blank();
          if (i_ < s_.size() && s_[i_] == '(') {
            ++i_;
            operand(id);
          }
        } else if (i_ < s_.size() && (s_[i_] == '"' || s_[i_] == '\'')) {
          quoted(s_[i_]); // u8"...", R"(...)" etc.: skipped as strings
        }
        line_start = false;
      } else {
        ++i_;
        line_start = false;
      }
    }
    return err_;
  }

private:
  bool splice() {
    if (s_[i_] == '\\' && i_ + 1 < s_.size() && s_[i_ + 1] == '\n') {
      i_ += 2;
      ++line_;
      return true;
    }
    return false;
  }
  bool comment() {
    if (s_[i_] != '/' || i_ + 1 >= s_.size()) return false;
    if (s_[i_ + 1] == '/') {
      while (i_ < s_.size() && s_[i_] != '\n') {
        if (!splice()) ++i_;
      }
      return true;
    }
    if (s_[i_ + 1] == '*') {
      i_ += 2;
      while (i_ + 1 < s_.size() && !(s_[i_] == '*' && s_[i_ + 1] == '/')) {
        if (s_[i_] == '\n') ++line_;
        ++i_;
      }
      i_ = std::min(s_.size(), i_ + 2);
      return true;
    }
    return false;
  }
  void quoted(char q) {
    ++i_;
    while (i_ < s_.size() && s_[i_] != q && s_[i_] != '\n') {
      if (splice()) continue;
      i_ += s_[i_] == '\\' ? 2 : 1;
    }
    if (i_ < s_.size() && s_[i_] == q) ++i_;
  }
  void number() {
    while (i_ < s_.size()) {
      char c = s_[i_];
      bool sign = (c == '+' || c == '-') && std::strchr("eEpP", s_[i_ - 1]);
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '\'' && c != '_' && !sign)
        break;
      ++i_;
    }
  }
  void skip_blank() {
    while (i_ < s_.size() && s_[i_] != '\n') {
      if (splice() || comment()) continue;
      if (!std::isspace(static_cast<unsigned char>(s_[i_]))) break;
      ++i_;
    }
  }
  std::string ident() {
    std::string id;
    while (i_ < s_.size()) {
      if (splice()) continue;
      char c = s_[i_];
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') break;
      id += c;
      ++i_;
    }
    return id;
  }
  void directive() {
    skip_blank();
    std::string name = ident();
    if (name == "include" || name == "include_next" || name == "import" || name == "embed" ||
        name == "__include_macros") {
      skip_blank();
      operand("#" + name);
    }
  }
  // The operand of an include-like directive: "file" or <file>, literally.
  void operand(const std::string &what) {
    skip_blank();
    char open = i_ < s_.size() ? s_[i_] : 0;
    char close = open == '"' ? '"' : open == '<' ? '>' : 0;
    if (!close) {
      fail(what + " must name a file literally (\"file.h\"), not through a macro");
      return;
    }
    std::string path;
    for (++i_; i_ < s_.size() && s_[i_] != close && s_[i_] != '\n'; ++i_) path += s_[i_];
    if (paths_) paths_->push_back(path);
    if (const char *why = bad_path(path))
      fail(what + " " + open + path + close + ": " + why +
           " (kernels can include only <metal_stdlib> and headers next to the kernel)");
  }
  void fail(const std::string &msg) {
    if (err_.empty()) err_ = label_ + ":" + std::to_string(line_) + ": error: " + msg;
  }

  const std::string &s_;
  const std::string &label_;
  std::vector<std::string> *paths_;
  size_t i_ = 0;
  unsigned line_ = 1;
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
    if (lstat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue; // a shim header
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
