// JSON reader (see json.h). Recursive descent; depth-limited.
#include "json.h"

#include <cstdlib>
#include <cstring>

namespace mbsim {

const Json *Json::get(const char *key) const {
  for (const auto &m : members)
    if (m.first == key) return &m.second;
  return nullptr;
}

std::string Json::str(const char *key) const {
  const Json *j = get(key);
  return j && j->kind == String ? j->text : std::string();
}

long long Json::num(const char *key, long long dflt) const {
  const Json *j = get(key);
  if (!j) return dflt;
  if (j->kind == Number || j->kind == String) {
    char *end = nullptr;
    long long v = std::strtoll(j->text.c_str(), &end, 10);
    if (end && *end == 0 && !j->text.empty()) return v;
  }
  return dflt;
}

namespace {

class Parser {
public:
  explicit Parser(const std::string &s) : s_(s) {}

  bool value(Json &out, int depth) {
    if (depth > 2000) return fail("nesting too deep (simplify the kernel's longest expression)");
    ws();
    if (i_ >= s_.size()) return fail("unexpected end");
    char c = s_[i_];
    if (c == '{') return object(out, depth);
    if (c == '[') return array(out, depth);
    if (c == '"') {
      out.kind = Json::String;
      return string(out.text);
    }
    if (c == 't' || c == 'f' || c == 'n') return literal(out);
    return number(out);
  }
  void ws() {
    while (i_ < s_.size() && std::strchr(" \t\r\n", s_[i_]) && s_[i_]) ++i_;
  }
  bool done() {
    ws();
    return i_ >= s_.size();
  }
  std::string error;

private:
  bool fail(const char *what) {
    error = std::string("malformed AST JSON: ") + what + " at byte " + std::to_string(i_);
    return false;
  }
  bool object(Json &out, int depth) {
    out.kind = Json::Object;
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
    for (;;) {
      ws();
      std::string key;
      if (i_ >= s_.size() || s_[i_] != '"' || !string(key)) return fail("expected a key");
      ws();
      if (i_ >= s_.size() || s_[i_] != ':') return fail("expected ':'");
      ++i_;
      out.members.emplace_back(std::move(key), Json());
      if (!value(out.members.back().second, depth + 1)) return false;
      ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
      return fail("expected ',' or '}'");
    }
  }
  bool array(Json &out, int depth) {
    out.kind = Json::Array;
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
    for (;;) {
      out.items.emplace_back();
      if (!value(out.items.back(), depth + 1)) return false;
      ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
      return fail("expected ',' or ']'");
    }
  }
  bool string(std::string &out) {
    ++i_; // opening quote
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      char e = s_[i_++];
      switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        if (i_ + 4 > s_.size()) return fail("bad \\u escape");
        unsigned v = static_cast<unsigned>(std::strtoul(s_.substr(i_, 4).c_str(), nullptr, 16));
        i_ += 4;
        // Basic-plane code point as UTF-8 (surrogates are not needed here).
        if (v < 0x80) out += static_cast<char>(v);
        else if (v < 0x800) {
          out += static_cast<char>(0xC0 | (v >> 6));
          out += static_cast<char>(0x80 | (v & 0x3F));
        } else {
          out += static_cast<char>(0xE0 | (v >> 12));
          out += static_cast<char>(0x80 | ((v >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (v & 0x3F));
        }
        break;
      }
      default: out += e; // \" \\ \/
      }
    }
    return fail("unterminated string");
  }
  bool literal(Json &out) {
    for (const char *w : {"true", "false", "null"}) {
      size_t n = std::strlen(w);
      if (s_.compare(i_, n, w) == 0) {
        i_ += n;
        out.kind = w[0] == 'n' ? Json::Null : Json::Bool;
        out.boolean = w[0] == 't';
        return true;
      }
    }
    return fail("bad literal");
  }
  bool number(Json &out) {
    size_t start = i_;
    while (i_ < s_.size() && std::strchr("+-0123456789.eE", s_[i_]) && s_[i_]) ++i_;
    if (i_ == start) return fail("unexpected character");
    out.kind = Json::Number;
    out.text = s_.substr(start, i_ - start);
    return true;
  }

  const std::string &s_;
  size_t i_ = 0;
};

} // namespace

bool parse_json_values(const std::string &text, std::vector<Json> *out, std::string *err) {
  Parser p(text);
  while (!p.done()) {
    out->emplace_back();
    if (!p.value(out->back(), 0)) {
      *err = p.error;
      return false;
    }
  }
  return true;
}

} // namespace mbsim
