// Reads a kernel's signature and threadgroup declarations from clang's JSON
// AST dump (see kernel_ast.h).
#include "kernel_ast.h"

#include "json.h"
#include "mb_sim_abi.h"

#include <cstdlib>

namespace mbsim {

namespace {

// Integer arguments of an AnnotateAttr (clang's JSON omits the string).
std::vector<long long> annotate_args(const Json &attr) {
  std::vector<long long> v;
  if (const Json *inner = attr.get("inner"))
    for (const Json &e : inner->items) v.push_back(e.num("value", -1));
  return v;
}

// The first annotation of ours on a declaration: {kind, value} or {0, 0}.
std::vector<std::vector<long long>> annotations(const Json &decl) {
  std::vector<std::vector<long long>> out;
  if (const Json *inner = decl.get("inner"))
    for (const Json &e : inner->items)
      if (e.str("kind") == "AnnotateAttr") out.push_back(annotate_args(e));
  return out;
}

// A source location's byte offset in the file where it was written out
// (expansion location for macros). -1 when it came from a macro body.
struct Loc {
  long long offset = -1;
  long long len = 0;
  bool from_macro = false;
};
Loc loc_of(const Json *l) {
  Loc r;
  if (!l) return r;
  if (const Json *e = l->get("expansionLoc")) {
    r.offset = e->num("offset", -1);
    r.len = e->num("tokLen", 0);
    r.from_macro = true;
    return r;
  }
  r.offset = l->num("offset", -1);
  r.len = l->num("tokLen", 0);
  return r;
}

// Walks values in document order, remembering the last "file" clang printed.
void track_file(const Json &j, std::string *file) {
  if (j.kind == Json::Object) {
    for (const auto &m : j.members) {
      if (m.first == "file" && m.second.kind == Json::String) *file = m.second.text;
      else track_file(m.second, file);
    }
  } else if (j.kind == Json::Array) {
    for (const Json &e : j.items) track_file(e, file);
  }
}

std::string file_of_loc(const Json *loc, const std::string &current) {
  if (!loc) return current;
  for (const char *k : {"expansionLoc", "spellingLoc"})
    if (const Json *e = loc->get(k)) {
      std::string f = e->str("file");
      if (!f.empty()) return f;
    }
  std::string f = loc->str("file");
  return f.empty() ? current : f;
}

// A type written as a pointer or reference (or array of them) is a
// per-thread variable pointing into threadgroup memory, not shared storage.
bool pointer_like(const Json &decl) {
  const Json *type = decl.get("type");
  if (!type) return false;
  std::string t = type->str("desugaredQualType");
  if (t.empty()) t = type->str("qualType");
  int angle = 0;
  for (char c : t) {
    if (c == '<') ++angle;
    else if (c == '>') --angle;
    else if ((c == '*' || c == '&') && angle == 0) return true;
  }
  return false;
}

class Analyzer {
public:
  Analyzer(KernelAst *out, std::string *err) : out_(out), err_(err) {}

  bool body(const Json &node) {
    if (node.kind != Json::Object) return true;
    if (node.str("kind") == "DeclStmt" && !decl_stmt(node)) return false;
    if (const Json *inner = node.get("inner"))
      for (const Json &c : inner->items)
        if (!body(c)) return false;
    return true;
  }

private:
  // `threadgroup T a[N], b;` becomes
  //   typedef threadgroup T __mb_tgt0[N], __mb_tgt1;
  //   __mb_tgt0 &a = __mb::tg_var<__mb_tgt0, 0>(); __mb_tgt1 &b = ...;
  // on the same line: the types stay the user's own tokens.
  bool decl_stmt(const Json &stmt) {
    const Json *inner = stmt.get("inner");
    if (!inner) return true;
    std::vector<const Json *> vars;
    bool shared = false, per_thread = false;
    for (const Json &d : inner->items) {
      if (d.str("kind") != "VarDecl") continue;
      bool tg = false;
      for (const auto &a : annotations(d))
        if (!a.empty() && a[0] == MB_MARK_THREADGROUP) tg = true;
      if (!tg) continue;
      vars.push_back(&d);
      (pointer_like(d) ? per_thread : shared) = true;
    }
    if (!shared) return true;
    std::string first = vars.front()->str("name");
    if (per_thread) {
      *err_ = "threadgroup variable '" + first +
              "': declare threadgroup arrays and threadgroup pointers in separate statements";
      return false;
    }
    const Json *range = stmt.get("range");
    Loc begin = loc_of(range ? range->get("begin") : nullptr);
    Loc end = loc_of(range ? range->get("end") : nullptr);
    if (begin.offset < 0 || end.offset < 0) {
      *err_ = "threadgroup variable '" + first + "': cannot locate its declaration";
      return false;
    }
    std::string after;
    for (const Json *v : vars) {
      std::string name = v->str("name");
      std::string init = v->str("init");
      if (init == "c" || init == "list") {
        *err_ = "threadgroup variable '" + name +
                "' has an initializer; MSL threadgroup variables cannot be initialized";
        return false;
      }
      Loc at = loc_of(v->get("loc"));
      if (at.offset < 0 || at.from_macro || v->get("loc")->get("spellingLoc")) {
        *err_ = "threadgroup variable '" + name +
                "' is declared through a macro; the simulator needs it written out";
        return false;
      }
      unsigned id = next_id_++;
      std::string alias = "__mb_tgt" + std::to_string(id);
      out_->edits.push_back({static_cast<size_t>(at.offset), static_cast<size_t>(at.len), alias});
      after += " " + alias + " &" + name + " = ::__mb::tg_var<" + alias + ", " +
               std::to_string(id) + ">();";
    }
    out_->edits.push_back({static_cast<size_t>(begin.offset), 0, "typedef "});
    out_->edits.push_back({static_cast<size_t>(end.offset + 1), 0, after});
    out_->threadgroup_vars += static_cast<unsigned>(vars.size());
    return true;
  }

  KernelAst *out_;
  std::string *err_;
  unsigned next_id_ = 0;
};

} // namespace

AstResult analyze_kernel_ast(const std::string &json, const std::string &main_file,
                             const std::string &function, KernelAst *out, std::string *err) {
  std::vector<Json> decls;
  if (!parse_json_values(json, &decls, err)) return AstResult::Error;
  std::string file;
  const Json *kernel = nullptr;
  for (const Json &d : decls) {
    std::string here = file_of_loc(d.get("loc"), file);
    if (d.str("kind") == "FunctionDecl" && d.str("name") == function && here == main_file) {
      // Prefer the definition over a forward declaration.
      bool has_body = false;
      if (const Json *inner = d.get("inner"))
        for (const Json &c : inner->items)
          if (c.str("kind") == "CompoundStmt") has_body = true;
      if (has_body || !kernel) kernel = &d;
    }
    track_file(d, &file);
  }
  if (!kernel) return AstResult::NotFound;

  const Json *inner = kernel->get("inner");
  for (const auto &a : annotations(*kernel))
    if (a.size() == 2 && a[0] == 6) out->max_total_threads = static_cast<unsigned>(a[1]);
  if (!inner) return AstResult::Ok;
  for (const Json &p : inner->items) {
    if (p.str("kind") != "ParmVarDecl") continue;
    ParamBinding b;
    b.name = p.str("name");
    std::string shown = b.name.empty() ? "#" + std::to_string(out->params.size() + 1) : b.name;
    for (const auto &a : annotations(p)) {
      if (a.size() != 2) continue;
      if (a[0] == MB_PARAM_BUFFER || a[0] == MB_PARAM_THREADGROUP || a[0] == MB_PARAM_ATTR) {
        b.kind = static_cast<int>(a[0]);
        b.index = static_cast<int>(a[1]);
      } else if (a[0] == MB_PARAM_UNSUPPORTED) {
        static const char *what[] = {"", "textures", "samplers", "[[stage_in]]"};
        *err = "parameter '" + shown + "' of kernel '" + function + "': " +
               what[a[1] >= 1 && a[1] <= 3 ? a[1] : 0] + " are not supported by the simulator";
        return AstResult::Error;
      }
    }
    if (b.kind == 0) {
      *err = "parameter '" + shown + "' of kernel '" + function +
             "' has no [[buffer(n)]], [[threadgroup(n)]] or thread-position attribute (is '" +
             function + "' a kernel function?)";
      return AstResult::Error;
    }
    if ((b.kind == MB_PARAM_BUFFER || b.kind == MB_PARAM_THREADGROUP) &&
        (b.index < 0 || b.index >= MB_SIM_MAX_BINDINGS)) {
      *err = "parameter '" + shown + "' of kernel '" + function + "': index " +
             std::to_string(b.index) + " is out of range (0.." +
             std::to_string(MB_SIM_MAX_BINDINGS - 1) + ")";
      return AstResult::Error;
    }
    out->params.push_back(b);
  }
  Analyzer an(out, err);
  for (const Json &c : inner->items)
    if (c.str("kind") == "CompoundStmt" && !an.body(c)) return AstResult::Error;
  return AstResult::Ok;
}

} // namespace mbsim
