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

constexpr int kMaxDepth = 4;
constexpr size_t kMaxFiles = 500;
constexpr off_t kMaxFileBytes = 1 << 20;

bool walk(const std::string &root, const std::string &rel, int depth, std::vector<UserFile> *out,
          std::string *err) {
  std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR *d = opendir(dir.c_str());
  if (!d) {
    if (rel.empty()) *err = "cannot read the include folder " + root;
    return !rel.empty();
  }
  std::vector<std::string> names;
  while (dirent *e = readdir(d))
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string &n : names) {
    std::string r = rel.empty() ? n : rel + "/" + n;
    struct stat st;
    if (lstat((root + "/" + r).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode) && depth < kMaxDepth) {
      if (!walk(root, r, depth + 1, out, err)) return false;
    } else if (S_ISREG(st.st_mode) && st.st_size <= kMaxFileBytes && out->size() < kMaxFiles) {
      UserFile f{r, ""};
      if (read_file(root + "/" + r, &f.text)) out->push_back(std::move(f));
    }
  }
  return true;
}

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
  Scanner(const std::string &text, const std::string &label) : s_(text), label_(label) {}

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
    if (const char *why = bad_path(path))
      fail(what + " " + open + path + close + ": " + why +
           " (kernels can include only <metal_stdlib> and headers next to the kernel)");
  }
  void fail(const std::string &msg) {
    if (err_.empty()) err_ = label_ + ":" + std::to_string(line_) + ": error: " + msg;
  }

  const std::string &s_;
  const std::string &label_;
  size_t i_ = 0;
  unsigned line_ = 1;
  std::string err_;
};

} // namespace

bool collect_user_files(const std::string &dir, std::vector<UserFile> *out, std::string *err) {
  out->clear();
  return walk(dir, "", 0, out, err);
}

std::string check_includes(const std::string &text, const std::string &label) {
  return Scanner(text, label).run();
}

} // namespace mbsim
