// Compiler messages without text from outside the kernel's files (diagnostics.h).
#include "diagnostics.h"

#include <cstring>
#include <vector>

namespace mbsim {

namespace {

enum class Origin { Own, Shim, Outside };

bool has_dotdot(const std::string &p) {
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    if (p.compare(start, end - start, "..") == 0) return true;
    start = end + 1;
  }
  return false;
}

bool under(const std::string &path, const std::string &dir) {
  return !dir.empty() && path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

// Where a file named in a message lives. The compiler runs in the build
// folder, so a relative name is one of the kernel's copies (or our entry
// file) unless it climbs out.
Origin origin(const std::string &file, const DiagnosticScope &s) {
  if (file.size() >= 2 && file.front() == '<' && file.back() == '>') return Origin::Shim; // <built-in>
  if (has_dotdot(file)) return Origin::Outside;
  if (file.empty() || file[0] != '/') return Origin::Own;
  if (under(file, s.build_dir)) return Origin::Own;
  if (under(file, s.shim_dir)) return Origin::Shim;
  return Origin::Outside;
}

struct Line {
  enum Kind { Chain, Located, Snippet } kind;
  std::string text;
  std::string file, line, severity; // Chain, Located
  Origin from = Origin::Own;
};

struct Message {
  std::vector<Line> lines;
  bool has_main = false;
  bool outside = false;
};

// Hand-written matchers: std::regex recurses per character, and a message
// can quote a very long line of the kernel.
bool digits(const std::string &s, size_t from, size_t to) {
  if (from >= to) return false;
  for (size_t i = from; i < to; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}
bool starts(const std::string &s, const char *p) { return s.compare(0, std::strlen(p), p) == 0; }

// "file:12:5: error: text" (the column is optional) -> file, line, severity.
// Quoted source lines start with a blank ("  12 | text"): never a location.
bool located(const std::string &s, Line *out) {
  static const char *const kSeverities[] = {"fatal error", "error", "warning", "note", "remark"};
  if (s.empty() || s[0] == ' ' || s[0] == '\t') return false;
  for (size_t colon = s.find(':'); colon != std::string::npos; colon = s.find(':', colon + 1)) {
    size_t i = colon + 1, j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    if (colon == 0 || !digits(s, i, j)) continue;
    size_t k = j;
    if (k < s.size() && s[k] == ':' && k + 1 < s.size() && s[k + 1] >= '0' && s[k + 1] <= '9') {
      ++k;
      while (k < s.size() && s[k] >= '0' && s[k] <= '9') ++k;
    }
    if (s.compare(k, 2, ": ") != 0) continue;
    for (const char *sev : kSeverities) {
      std::string tag = std::string(sev) + ": ";
      if (s.compare(k + 2, tag.size(), tag) == 0) {
        *out = {Line::Located, s, s.substr(0, colon), s.substr(i, j - i), sev, Origin::Own};
        return true;
      }
    }
  }
  return false;
}

// "In file included from file:12:"
bool chain(const std::string &s, Line *out) {
  const char *head = "In file included from ";
  if (!starts(s, head) || s.size() < std::strlen(head) + 3 || s.back() != ':') return false;
  size_t colon = s.rfind(':', s.size() - 2);
  if (colon == std::string::npos || colon < std::strlen(head) || !digits(s, colon + 1, s.size() - 1))
    return false;
  *out = {Line::Chain, s, s.substr(std::strlen(head), colon - std::strlen(head)),
          s.substr(colon + 1, s.size() - colon - 2), "", Origin::Own};
  return true;
}

// "2 errors generated.", "clang++: error: ...", "error: ..." (no file).
bool summary(const std::string &s) {
  if (!s.empty() && s[0] >= '0' && s[0] <= '9' && s.size() < 80 &&
      s.compare(s.size() >= 11 ? s.size() - 11 : 0, 11, " generated.") == 0)
    return true;
  for (const char *p : {"error: ", "fatal error: ", "warning: ", "note: "})
    if (starts(s, p)) return true;
  size_t colon = s.find(": ");
  if (!starts(s, "clang") || colon == std::string::npos || s.find(' ') < colon) return false;
  for (const char *p : {"error: ", "warning: ", "note: "})
    if (s.compare(colon + 2, std::strlen(p), p) == 0) return true;
  return false;
}

// "/usr/bin/ld: text" -> "ld: text"
bool linker(const std::string &s, std::string *out) {
  size_t colon = s.find(": ");
  if (colon == std::string::npos || s.find(' ') < colon) return false;
  std::string tool = s.substr(0, colon);
  tool = tool.substr(tool.find_last_of('/') == std::string::npos ? 0 : tool.find_last_of('/') + 1);
  bool ld = tool == "ld" || starts(tool, "ld.") || starts(tool, "ld64.") ||
            (tool.size() > 3 && tool.compare(tool.size() - 3, 3, "-ld") == 0) ||
            tool.find("-ld.") != std::string::npos;
  if (ld) *out = "ld: " + s.substr(colon + 2);
  return ld;
}

// "__mb_entry.cpp:(.text+0x5): undefined reference to `x'": what the linker
// says about an object file (the file and section in parentheses).
bool linker_detail(const std::string &s, std::string *file) {
  size_t at = s.find(":(");
  if (at == std::string::npos || at == 0 || s.find(' ') < at || s.find("): ", at) == std::string::npos)
    return false;
  *file = s.substr(0, at);
  return true;
}

// "kernel.metal:12: error: (...)", at the kernel's nearest line: the
// message's own location, else where the kernel's files include the
// outside file (the innermost such line), else a note in the kernel's files.
std::string reduced(const Message &m, const char *why) {
  const Line *main = nullptr, *anchor = nullptr;
  for (const Line &l : m.lines)
    if (!main && l.kind == Line::Located && l.severity != "note") main = &l;
  if (main && main->from == Origin::Own) anchor = main;
  if (!anchor)
    for (const Line &l : m.lines)
      if (l.kind == Line::Chain && l.from == Origin::Own) anchor = &l;
  if (!anchor)
    for (const Line &l : m.lines)
      if (!anchor && l.kind == Line::Located && l.from == Origin::Own) anchor = &l;
  std::string severity = main ? main->severity : "error";
  return (anchor ? anchor->file + ":" + anchor->line + ": " : "") + severity + ": (" + why + ")";
}

} // namespace

bool read_outside(const std::string &deps, const DiagnosticScope &scope) {
  // "out.o: k.metal /shim/metal_stdlib <backslash-newline> inc/x.h"; a
  // space or # in a name is escaped with a backslash.
  size_t colon = deps.find(": ");
  std::string path;
  bool outside = false;
  for (size_t i = colon == std::string::npos ? deps.size() : colon + 2; i <= deps.size(); ++i) {
    char c = i < deps.size() ? deps[i] : ' ';
    if (c == '\\' && i + 1 < deps.size() && deps[i + 1] != '\n') {
      path += deps[++i];
      continue;
    }
    if (c == ' ' || c == '\n' || c == '\\' || c == '\t') {
      if (!path.empty() && origin(path, scope) == Origin::Outside) outside = true;
      path.clear();
      continue;
    }
    path += c;
  }
  return outside;
}

std::string clean_diagnostics(const std::string &text, const DiagnosticScope &scope,
                              bool outside_read) {
  // In order: messages, and lines that stand alone (summaries, the linker).
  std::vector<Message> messages;
  std::vector<std::pair<int, std::string>> order; // message index, or -1 and the line
  bool open = false; // the last message can take more lines
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string s = text.substr(start, end - start);
    start = end + 1;
    Line l{Line::Snippet, s, "", "", "", Origin::Own};
    std::string ld;
    if (chain(s, &l) || located(s, &l)) {
      l.from = origin(l.file, scope);
      bool main = l.kind == Line::Located && l.severity != "note";
      // A message starts with its include chain or its error; notes follow it.
      if (!open || (messages.back().has_main && (main || l.kind == Line::Chain))) {
        messages.push_back({});
        order.emplace_back(static_cast<int>(messages.size() - 1), "");
        open = true;
      }
      messages.back().has_main |= main;
      messages.back().lines.push_back(l);
    } else if (summary(s)) {
      open = false;
      order.emplace_back(-1, s);
    } else if (linker(s, &ld)) {
      open = false;
      order.emplace_back(-1, ld);
    } else if (std::string file; linker_detail(s, &file)) {
      open = false;
      if (origin(file, scope) == Origin::Own) order.emplace_back(-1, "ld: " + s);
    } else if (open && messages.back().lines.back().kind != Line::Chain) {
      messages.back().lines.push_back(l); // the quoted source under a location
    } // else: a line we cannot place is dropped
  }
  bool any_outside = outside_read;
  for (Message &msg : messages) {
    for (const Line &l : msg.lines)
      msg.outside |= l.kind != Line::Snippet && l.from == Origin::Outside;
    any_outside |= msg.outside;
  }
  std::string out;
  for (const auto &[index, line] : order) {
    if (index < 0) {
      // the linker names our objects by their path in the build folder
      std::string l = line;
      for (size_t at; !scope.build_dir.empty() && (at = l.find(scope.build_dir + "/")) != std::string::npos;)
        l.erase(at, scope.build_dir.size() + 1);
      out += l + "\n";
      continue;
    }
    const Message &msg = messages[static_cast<size_t>(index)];
    if (msg.outside)
      out += reduced(msg, "text not shown: it concerns a file outside the kernel's folder") + "\n";
    else if (any_outside)
      out += reduced(msg, "text not shown: this compile read a file outside the kernel's folder") +
             "\n";
    else
      for (const Line &l : msg.lines) out += l.text + "\n";
  }
  return out;
}

} // namespace mbsim
