// Reads the kernel, its bindings and the rewrites the compile step applies
// from clang's JSON AST dump of the user's code (see kernel_ast.h).
#include "kernel_ast.h"

#include "json.h"
#include "mb_sim_abi.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <set>
#include <unordered_map>

namespace mbsim {

namespace {

// Arguments of an AnnotateAttr after its first string: integers, or the
// text of a string literal (clang's JSON omits the first string).
struct Annotation {
  std::vector<long long> ints;
  std::string text;
};

const Json *find_kind(const Json &j, const char *kind) {
  if (j.str("kind") == kind) return &j;
  if (const Json *inner = j.get("inner"))
    for (const Json &c : inner->items)
      if (const Json *f = find_kind(c, kind)) return f;
  return nullptr;
}

std::vector<Annotation> annotations(const Json &decl) {
  std::vector<Annotation> out;
  if (const Json *inner = decl.get("inner"))
    for (const Json &e : inner->items) {
      if (e.str("kind") != "AnnotateAttr") continue;
      Annotation a;
      if (const Json *args = e.get("inner"))
        for (const Json &arg : args->items) {
          if (const Json *s = find_kind(arg, "StringLiteral")) {
            std::string v = s->str("value");
            a.text = v.size() >= 2 ? v.substr(1, v.size() - 2) : v;
            a.ints.push_back(-1);
          } else {
            a.ints.push_back(arg.num("value", -1));
          }
        }
      out.push_back(a);
    }
  return out;
}

bool has_mark(const Json &decl, int mark) {
  for (const Annotation &a : annotations(decl))
    if (!a.ints.empty() && a.ints[0] == mark) return true;
  return false;
}

std::string host_name_of(const Json &decl) {
  for (const Annotation &a : annotations(decl))
    if (a.ints.size() == 2 && a.ints[0] == MB_MARK_HOST_NAME) return a.text;
  return "";
}

bool has_body(const Json &fn) {
  if (const Json *inner = fn.get("inner"))
    for (const Json &c : inner->items)
      if (c.str("kind") == "CompoundStmt") return true;
  return false;
}

bool is_specialization(const Json &fn) {
  if (const Json *inner = fn.get("inner"))
    for (const Json &c : inner->items)
      if (c.str("kind") == "TemplateArgument") return true;
  return false;
}

std::string type_text(const Json &node) {
  const Json *t = node.get("type");
  if (!t) return "";
  return t->str("qualType") + " " + t->str("desugaredQualType");
}
bool vector_typed(const Json &node) {
  return type_text(node).find("ext_vector_type") != std::string::npos;
}
// A pointer to a vector: "const float4 *", "float __attribute__((ext_vector_type(4))) *".
bool vector_pointer(const Json &node) {
  const Json *t = node.get("type");
  if (!t) return false;
  for (std::string q : {t->str("qualType"), t->str("desugaredQualType")}) {
    while (!q.empty() && q.back() == ' ') q.pop_back();
    // A type substituted through a template prints the vector attribute
    // last: "float const __global * __attribute__((ext_vector_type(4)))".
    size_t attr = q.rfind(" __attribute__((ext_vector_type(");
    if (attr != std::string::npos && q.back() == ')' && attr > 0 && q[attr - 1] == '*' &&
        q.find('*') == attr - 1)
      return true;
    if (q.empty() || q.back() != '*') continue;
    q.pop_back();
    if (q.find('*') != std::string::npos) continue;
    if (q.find("ext_vector_type") != std::string::npos) return true;
    std::string name;
    size_t i = 0;
    while (i < q.size()) {
      size_t j = q.find(' ', i);
      if (j == std::string::npos) j = q.size();
      std::string w = q.substr(i, j - i);
      if (!w.empty() && w != "const" && w != "volatile") name = w;
      i = j + 1;
    }
    if (name.compare(0, 7, "metal::") == 0) name = name.substr(7);
    if (msl_vector_type_name(name)) return true;
  }
  return false;
}
bool dependent_typed(const Json &node) {
  const Json *t = node.get("type");
  return t && t->str("qualType") == "<dependent type>";
}

// A type written as a pointer or reference (or array of them) is a
// per-thread variable pointing into threadgroup memory, not shared storage.
bool pointer_like(const Json &decl) {
  const Json *type = decl.get("type");
  if (!type) return false;
  std::string t = type->str("desugaredQualType");
  if (t.empty()) t = type->str("qualType");
  int angle = 0, square = 0; // (a bound such as [BM * P] is no pointer)
  for (char c : t) {
    if (c == '<') ++angle;
    else if (c == '>') --angle;
    else if (c == '[') ++square;
    else if (c == ']') --square;
    else if ((c == '*' || c == '&') && angle == 0 && square == 0) return true;
  }
  return false;
}

// Whether an object of this type (clang's spelling) is const at its top
// level: `const float[4]`, `float *const`, `const int &` are; `int`,
// `const int *`, `int &` are not.
bool const_type(std::string t) {
  while (!t.empty() && (t.back() == ' ' || t.back() == ']')) {
    if (t.back() == ']') t.erase(std::min(t.size() - 1, t.rfind('[')));
    else t.pop_back();
  }
  // The outermost pointer or reference: what follows a pointer qualifies
  // it; a reference is as const as what it refers to.
  int angle = 0;
  size_t last = std::string::npos;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '<') ++angle;
    else if (t[i] == '>') --angle;
    else if ((t[i] == '*' || t[i] == '&') && angle == 0) last = i;
  }
  if (last != std::string::npos && t[last] == '*') {
    size_t stop = t.find(')', last); // void (*const)(int): up to the declarator's end
    return t.substr(last + 1, stop == std::string::npos ? stop : stop - last - 1).find("const") !=
           std::string::npos;
  }
  if (last != std::string::npos) {
    while (last > 0 && t[last - 1] == '&') --last;
    return const_type(t.substr(0, last));
  }
  std::string word;
  for (char c : t + " ") {
    if (c == '<') ++angle;
    if (c == '>') --angle;
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
      word += c;
      continue;
    }
    // __constant: MSL's `constant` address space is read-only
    if ((word == "const" || word == "__constant") && angle == 0) return true;
    word.clear();
  }
  return false;
}

bool const_object(const Json &decl) {
  const Json *type = decl.get("type");
  if (!type) return false;
  std::string t = type->str("desugaredQualType");
  return const_type(t.empty() ? type->str("qualType") : t);
}

// An lvalue of class type in constant memory ("const __constant P").
bool constant_record(const Json &node) {
  const Json *t = node.get("type");
  if (!t || node.str("valueCategory") != "lvalue") return false;
  std::string q = t->str("desugaredQualType").empty() ? t->str("qualType")
                                                        : t->str("desugaredQualType");
  if (q.find("__constant") == std::string::npos || q.find('*') != std::string::npos ||
      q.find('[') != std::string::npos || q.find("ext_vector_type") != std::string::npos)
    return false;
  static const char *const scalars[] = {"bool", "char", "short", "int", "long", "float",
                                        "half", "_Float16", "__bf16", "bfloat", "double",
                                        "unsigned", "signed", "uint", "ushort", "uchar", "ulong"};
  std::string last = q.substr(q.find_last_of(' ') == std::string::npos ? 0 : q.find_last_of(' ') + 1);
  for (const char *s : scalars)
    if (last == s) return false;
  return true;
}

// The identifiers in a type's spelling ("const __mbu::H<int>" -> const, __mbu, H, int).
std::vector<std::string> type_words(const Json &node) {
  std::vector<std::string> out;
  std::string word;
  for (char c : type_text(node) + " ") {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') word += c;
    else if (!word.empty()) out.push_back(word), word.clear();
  }
  return out;
}

// One edit, with what decides its place among edits at the same offset:
// closing text first (inner before outer), then opening text (outer before
// inner), then replacements.
struct Pending {
  Edit e;
  int group; // 0 close, 1 open, 2 replace
  int depth;
  size_t seq; // order of discovery, last tie-break
};

// A range of one user file: [begin, end).
struct Range {
  int file = -1;
  size_t begin = 0, end = 0;
};

class Analyzer {
public:
  Analyzer(const std::vector<SourceFile> &files, KernelAst *out, std::string *err)
      : files_(files), out_(out), err_(err), pending_(files.size()) {}

  // Every bare location's file, in document order (clang prints a file
  // name only where it changes).
  void index_locations(const Json &j, int *cur) {
    if (j.kind == Json::Object) {
      if (j.get("offset")) {
        if (const Json *f = j.get("file"); f && f->kind == Json::String) *cur = file_index(f->text);
        loc_file_[&j] = *cur;
      }
      for (const auto &m : j.members)
        if (m.first != "includedFrom") index_locations(m.second, cur);
    } else if (j.kind == Json::Array) {
      for (const Json &e : j.items) index_locations(e, cur);
    }
  }

  // Finds every kernel, and the one named `function` (a kernel function, or
  // a template instantiation with that host_name).
  void find_kernels(const Json &j, const std::string &function, const std::string &scope) {
    std::string kind = j.str("kind");
    std::string here = scope;
    if (kind == "NamespaceDecl" && j.str("name") != "__mbu") here += j.str("name") + "::";
    if (kind == "FunctionDecl") {
      std::string host = host_name_of(j), name = j.str("name");
      bool spec = is_specialization(j);
      if (!host.empty() && spec) {
        out_->kernels.push_back(host);
        if (host == function && !target_) {
          target_ = &j;
          callable_ = "::__mbu::" + here + name + "<" + template_args(j) + ">";
          // The body to rewrite is the template's: an instantiation repeats
          // it (and the dump shows none when the pattern has errors).
          if (template_)
            for (const Json &c : template_->get("inner")->items)
              if (c.str("kind") == "FunctionDecl" && !is_specialization(c) && has_body(c))
                target_pattern_ = &c;
        }
      } else if (!host.empty() || (has_mark(j, MB_MARK_KERNEL) && !spec && !in_template_)) {
        std::string shown = host.empty() ? name : host;
        if (std::find(out_->kernels.begin(), out_->kernels.end(), shown) == out_->kernels.end())
          out_->kernels.push_back(shown);
        if (shown == function && (!target_ || has_body(j))) {
          target_ = &j;
          // Qualified: a kernel named like a metal function (`rotate`) is
          // then the kernel, whatever `using namespace metal` brings in.
          callable_ = "::__mbu::" + here + name;
        }
      }
    }
    bool was = in_template_;
    const Json *was_template = template_;
    if (kind == "FunctionTemplateDecl") in_template_ = true, template_ = &j;
    if (const Json *inner = j.get("inner"))
      for (const Json &c : inner->items) find_kernels(c, function, here);
    in_template_ = was;
    template_ = was_template;
  }

  const Json *target() const { return target_; }
  const std::string &callable() const { return callable_; }

  bool visit(const Json &n, const Json *fn, bool fn_kernel, int depth) {
    if (n.kind != Json::Object) return true;
    std::string kind = n.str("kind");
    if (kind == "FunctionDecl" || kind == "CXXMethodDecl") {
      fn = &n;
      fn_kernel = kind == "FunctionDecl" &&
                  (has_mark(n, MB_MARK_KERNEL) || !host_name_of(n).empty());
    }
    if (kind == "NonTypeTemplateParmDecl" && type_text(n).find("(*)") != std::string::npos) {
      // template <..., RadixFunc<T> f> with a function pointer type (MLX's
      // fft.h): C++ for OpenCL takes no function as such an argument, but
      // takes it for a reference to the function type.
      Range r;
      bool macro = false;
      const Json *at = bare_of(n.get("loc"), &macro);
      if (at && !macro && resolve(n, &r) && file_of(at) == r.file && first_time(r, 'f')) {
        add(r.file, r.begin, 0, "::__mb::fn_ref<", 1, depth);
        add(r.file, static_cast<size_t>(at->num("offset", 0)), 0, "> ", 0, depth);
      }
    }
    if (redundant_redeclaration(n) && in_user_code(n)) {
      // `constant constexpr const float W<6>::t[8][8];` outside the class: a
      // redundant redeclaration since C++17, which C++ for OpenCL refuses
      // (a constant variable without initializer). Dropped.
      Range r;
      if (resolve(n, &r) && first_time(r, 'o')) {
        size_t semi = files_[r.file].text->find(';', r.begin); // through the bounds
        if (semi != std::string::npos) add(r.file, r.begin, semi - r.begin, "", 2, depth);
      }
      return true;
    }
    if (kind == "GCCAsmStmt" || kind == "MSAsmStmt" || kind == "FileScopeAsmDecl") {
      if (in_user_code(n)) return fail_at(n, "inline assembly is not part of MSL");
    } else if (kind == "VarDecl" && has_mark(n, MB_MARK_THREADGROUP) && !pointer_like(n) &&
               !fn_kernel && in_user_code(n)) {
      std::string where = fn ? "in function '" + fn->str("name") + "'" : "outside any function";
      return fail_at(n, "threadgroup variable '" + n.str("name") + "' is declared " + where +
                            ": the simulator shares threadgroup variables declared in the "
                            "kernel itself; declare it there and pass a pointer");
    } else if (kind == "DeclStmt" && (fn == target_ || (fn && fn == target_pattern_))) {
      Range r;
      if (resolve(n, &r)) first_time(r, 'g');
      if (!threadgroup_decls(n, depth, true)) return false;
    } else if (kind == "DeclStmt" && fn_kernel) {
      other_kernels_.push_back({&n, depth});
    } else if (kind == "BinaryOperator" || kind == "UnaryOperator") {
      std::string op = n.str("opcode");
      bool logical = op == "<" || op == ">" || op == "<=" || op == ">=" || op == "==" ||
                     op == "!=" || op == "&&" || op == "||" ||
                     (kind == "UnaryOperator" && op == "!");
      if (logical && (vector_typed(n) || dependent_typed(n))) wrap(n, depth, "::__mb::bvec(", ")");
    } else if (kind == "CStyleCastExpr") {
      std::string ck = n.str("castKind");
      if ((ck == "BitCast" && vector_typed(n)) || ck == "Dependent") vector_cast(n, depth);
    } else if (kind == "ExtVectorElementExpr") {
      // p->x, p[i].x, (*p).x: the vector's alignment is checked as for a
      // whole-vector access (clang's -fsanitize=alignment checks only those).
      const Json *inner = n.get("inner");
      const Json *base = inner && !inner->items.empty() ? &inner->items[0] : nullptr;
      const Json *core = base;
      while (core && core->str("kind") == "ParenExpr" && core->get("inner"))
        core = &core->get("inner")->items[0];
      if (base && vector_pointer(*base)) wrap(*base, depth + 1, "::__mb::vptr(", ")");
      else if (core && (core->str("kind") == "ArraySubscriptExpr" ||
                        (core->str("kind") == "UnaryOperator" && core->str("opcode") == "*")))
        wrap(*base, depth + 1, "::__mb::vref(", ")");
    } else if (kind == "ConditionalOperator") {
      const Json *inner = n.get("inner");
      if (inner && inner->items.size() == 3 && vector_typed(inner->items[0])) select(n, depth);
    } else if (kind == "CompoundAssignOperator" &&
               (n.str("opcode") == "+=" || n.str("opcode") == "-=") &&
               n.get("computeLHSType") &&
               n.get("computeLHSType")->str("qualType") == "<dependent type>") {
      // p += stride in a template (MLX's steel loaders), where the stride
      // may be an integral_constant: C++ for OpenCL finds no built-in += for
      // a pointer into an address space and a class operand.
      compound_pointer_step(n, depth, 0);
    } else if (kind == "CXXOperatorCallExpr" && dependent_typed(n) && n.get("inner") &&
               n.get("inner")->items.size() == 3) {
      // The same, where operator+= templates are in scope (MLX's complex.h):
      // clang keeps the call unresolved.
      const Json &callee = n.get("inner")->items[0];
      std::string name = callee.str("name");
      if (callee.str("kind") == "UnresolvedLookupExpr" &&
          (name == "operator+=" || name == "operator-="))
        compound_pointer_step(n, depth, 1, name.substr(8));
    } else if (kind == "CXXUnresolvedConstructExpr") {
      // V(a, b) with V a template parameter: a vector constructor once V is
      // a vector type (clang would take V(a, b) as a scalar initializer).
      const Json *inner = n.get("inner");
      if (inner && !inner->items.empty()) construct(n, depth);
    } else if (kind == "VarDecl" && n.str("init") == "list" &&
               type_text(n).find("vec<") != std::string::npos && !vector_typed(n)) {
      // metal::vec<T, N> v{0} in a template: once T and N are known, a
      // short list (the rest zero, as in MSL).
      if (const Json *inner = n.get("inner"))
        for (const Json &c : inner->items)
          if (c.str("kind") == "InitListExpr") short_vector_list(c, depth + 1);
    } else if (kind == "VarDecl" && !n.str("init").empty() && vector_typed(n)) {
      // short2 v(a, b): a vector constructor too.
      direct_vector_init(n, depth);
      // uint4 v = {a, b, c}: the rest zero, as MSL has it (OpenCL refuses).
      // (A list in a template shows as it is, without a recovery node.)
      if (const Json *inner = n.get("inner"))
        for (const Json &c : inner->items) {
          if (c.str("kind") == "RecoveryExpr" && c.get("inner") && !c.get("inner")->items.empty() &&
              c.get("inner")->items[0].str("kind") == "InitListExpr")
            short_vector_list(c.get("inner")->items[0], depth + 1);
          if (c.str("kind") == "InitListExpr" && short_list(n, c))
            short_vector_list(c, depth + 1);
        }
    } else if (kind == "RecoveryExpr") {
      // f({x, y, z}) for a uint3 parameter: clang converts no brace list to
      // a vector argument; a list that converts to any vector type does.
      // (Only the arguments of a failed call: the first child names what
      // was called.)
      const Json *inner = n.get("inner");
      std::string callee = inner && !inner->items.empty() ? inner->items[0].str("kind") : "";
      if (callee == "UnresolvedLookupExpr" || callee == "DeclRefExpr" ||
          callee == "UnresolvedMemberExpr" || callee == "MemberExpr")
        for (size_t i = 1; i < inner->items.size(); ++i)
          if (inner->items[i].str("kind") == "InitListExpr") brace_argument(inner->items[i], depth + 1);
      float_cast(n, depth); // static_cast<bfloat>(h) that failed
      // A struct in constant memory copied (P p = q; o[0] = kDefault;):
      // C++ for OpenCL's implicit copies take no __constant object.
      if (inner)
        for (const Json &c : inner->items)
          if (constant_record(c)) wrap(c, depth + 1, "::__mb::from_constant(", ")");
    } else if (kind == "CXXStaticCastExpr" && n.str("castKind") == "Dependent") {
      float_cast(n, depth); // static_cast<T>(x) in a template: T may be half, x bfloat
    }
    if (const Json *inner = n.get("inner"))
      for (const Json &c : inner->items)
        if (!visit(c, fn, fn_kernel, depth + 1)) return false;
    return true;
  }

  void finish() {
    for (size_t f = 0; f < files_.size(); ++f) {
      std::vector<Pending> &v = pending_[f];
      std::sort(v.begin(), v.end(), [](const Pending &a, const Pending &b) {
        if (a.e.offset != b.e.offset) return a.e.offset < b.e.offset;
        if (a.group != b.group) return a.group < b.group;
        if (a.depth != b.depth) return a.group == 0 ? a.depth > b.depth : a.depth < b.depth;
        return a.seq < b.seq;
      });
      std::vector<Edit> edits;
      for (const Pending &p : v) edits.push_back(p.e);
      if (!edits.empty()) out_->edits[files_[f].name] = std::move(edits);
    }
  }

  // Records (by name) with a `mutable` member, directly or through a
  // member or base: a const object of one can still change.
  void find_mutable_records(const std::vector<Json> &decls) {
    std::vector<std::pair<std::string, const Json *>> records;
    std::function<void(const Json &)> collect = [&](const Json &n) {
      std::string kind = n.str("kind");
      if ((kind == "CXXRecordDecl" || kind == "ClassTemplateSpecializationDecl") &&
          !n.get("isImplicit") && !n.str("name").empty())
        records.emplace_back(n.str("name"), &n);
      if (const Json *inner = n.get("inner"))
        for (const Json &c : inner->items) collect(c);
    };
    for (const Json &d : decls) collect(d);
    for (bool changed = true; changed;) {
      changed = false;
      for (const auto &[name, rec] : records) {
        if (mutable_records_.count(name)) continue;
        bool taint = false;
        if (const Json *bases = rec->get("bases"))
          for (const Json &b : bases->items)
            for (const std::string &w : type_words(b)) taint |= mutable_records_.count(w) > 0;
        if (const Json *inner = rec->get("inner"))
          for (const Json &f : inner->items) {
            if (f.str("kind") != "FieldDecl") continue;
            if (f.get("mutable")) taint = true;
            for (const std::string &w : type_words(f)) taint |= mutable_records_.count(w) > 0;
          }
        if (taint) changed = mutable_records_.insert(name).second || changed;
      }
    }
  }

  enum class Scope { Namespace, Record, Function };

  // MSL has no mutable program-scope state: every variable with static
  // storage (namespace scope, `static` in a function or class) must be
  // constant, and constant-initialized (clang checks that in the build,
  // through an attribute added here); no thread_local, no extern
  // variables, no attributes that place or rename symbols.
  bool program_scope(const Json &n, Scope scope, bool static_init, const std::string &fn) {
    if (n.kind != Json::Object) return true;
    std::string kind = n.str("kind");
    if (kind.size() > 4 && kind.compare(kind.size() - 4, 4, "Attr") == 0) {
      // (Constructors and destructors are left to elf_check.h, which
      // refuses any code that would run on load, however it is written.)
      static const std::set<std::string> placing = {
          "AsmLabelAttr", "SectionAttr",    "CodeSegAttr",  "AliasAttr",  "WeakRefAttr",
          "IFuncAttr",    "VisibilityAttr", "TLSModelAttr", "InitSegAttr"};
      if (placing.count(kind) && in_user_code(n)) {
        std::string what = kind == "AsmLabelAttr" ? "an asm label (a symbol name)"
                                                  : "__attribute__((" + lower(kind) + "))";
        return fail_at(n, what + " is not part of MSL; remove it");
      }
      return true;
    }
    if (kind == "CompoundLiteralExpr" && static_init && in_user_code(n))
      return fail_at(n, "a compound literal in the initializer of a static or program-scope "
                        "variable would be writable memory that outlives the launch; Metal "
                        "allows only constant program-scope data — fix: declare a named "
                        "`constant` array instead");
    Scope inner_scope = scope;
    std::string inner_fn = fn;
    if (kind == "NamespaceDecl" || kind == "LinkageSpecDecl") {
      inner_scope = Scope::Namespace;

    } else if (kind == "CXXRecordDecl" || kind == "ClassTemplateSpecializationDecl" ||
               kind == "ClassTemplatePartialSpecializationDecl") {
      inner_scope = Scope::Record;
    } else if (kind == "FunctionDecl" || kind == "CXXMethodDecl" ||
               kind == "CXXConstructorDecl" || kind == "CXXDestructorDecl" ||
               kind == "CXXConversionDecl") {
      inner_scope = Scope::Function;
      inner_fn = n.str("name");
      static_init = false;
    } else if ((kind == "VarDecl" || kind == "VarTemplateSpecializationDecl" ||
                kind == "DecompositionDecl") &&
               in_user_code(n) && !has_mark(n, MB_MARK_THREADGROUP)) {
      std::string sc = n.str("storageClass");
      bool tls = !n.str("tls").empty();
      bool stat = scope != Scope::Function || sc == "static" || sc == "extern" || tls;
      if (stat) {
        if (!check_static_var(n, scope, fn)) return false;
        static_init = true;
      }
    }
    // `extern "C" int x;` declares (as `extern` does) without defining.
    bool was_bare = bare_linkage_;
    bare_linkage_ = kind == "LinkageSpecDecl" && !n.get("hasBraces");
    bool ok = true;
    if (const Json *inner = n.get("inner"))
      for (const Json &c : inner->items)
        if (!(ok = program_scope(c, inner_scope, static_init, inner_fn))) break;
    bare_linkage_ = was_bare;
    return ok;
  }

private:
  static std::string lower(std::string kind) {
    kind.resize(kind.size() - 4); // "SectionAttr" -> "section"
    std::string out;
    for (char c : kind) {
      if (std::isupper(static_cast<unsigned char>(c)) && !out.empty()) out += '_';
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out == "i_func" ? "ifunc" : out;
  }

  // The out-of-line redeclaration visit() drops (see there).
  static bool redundant_redeclaration(const Json &n) {
    return n.str("kind") == "VarDecl" && n.get("previousDecl") && n.get("parentDeclContextId") &&
           n.get("constexpr") && n.str("init").empty();
  }
  bool check_static_var(const Json &n, Scope scope, const std::string &fn) {
    if (redundant_redeclaration(n)) return true;
    std::string name = n.str("name");
    std::string what = scope == Scope::Function ? "static variable '" + name + "' in function '" +
                                                      fn + "'"
                       : scope == Scope::Record ? "static data member '" + name + "'"
                                                : "program-scope variable '" + name + "'";
    const char *rule = "Metal allows only constant program-scope data";
    if (!n.str("tls").empty())
      return fail_at(n, "thread_local variable '" + name + "' keeps state across launches; " +
                            rule + " — fix: use a local variable in the kernel");
    bool declared_only = n.str("storageClass") == "extern" || bare_linkage_;
    if (declared_only && n.str("init").empty())
      return fail_at(n, "extern variable '" + name + "' would reach the host's memory; " + rule +
                            " — fix: define it here as `constant` with a constant initializer");
    if (!n.get("constexpr") && !const_object(n))
      return fail_at(n, what + " is mutable; " + rule +
                            " — fix: declare it `constant` with a constant initializer, or "
                            "make it a local variable of the kernel");
    for (const std::string &w : type_words(n))
      if (mutable_records_.count(w))
        return fail_at(n, what + " has `mutable` members of type '" + w + "', so it can change; " +
                              rule + " — fix: remove `mutable` from the type's members");
    // Constant, if its initializer is: clang refuses one computed at run
    // time (a static local initialized from a kernel argument, say).
    bool macro = false;
    const Json *at = bare_of(n.get("loc"), &macro);
    int f = at ? file_of(at) : -1;
    // (No initializer: zero-initialized, which is constant.)
    if (n.str("kind") == "VarDecl" && !name.empty() && f >= 0 && !macro && !n.str("init").empty()) {
      Range r{f, static_cast<size_t>(at->num("offset", 0)), 0};
      r.end = r.begin + static_cast<size_t>(at->num("tokLen", 0));
      const std::string &t = *files_[f].text;
      if (r.end <= t.size() && t.compare(r.begin, r.end - r.begin, name) == 0 &&
          first_time(r, 'k'))
        add(f, r.end, 0, " [[clang::require_constant_initialization]]", 2, 0);
    }
    return true;
  }

private:
  int file_index(const std::string &name) const {
    for (size_t i = 0; i < files_.size(); ++i)
      if (files_[i].name == name) return static_cast<int>(i);
    return -1;
  }
  int file_of(const Json *bare) const {
    auto it = loc_file_.find(bare);
    return it == loc_file_.end() ? -1 : it->second;
  }
  // The location as written: the spelling inside a macro definition, else
  // the location itself.
  static const Json *bare_of(const Json *loc, bool *macro) {
    if (!loc) return nullptr;
    if (const Json *s = loc->get("spellingLoc")) {
      *macro = true;
      return s;
    }
    *macro = false;
    return loc->get("offset") ? loc : nullptr;
  }
  bool in_user_code(const Json &n) const {
    bool m;
    const Json *l = bare_of(n.get("loc"), &m);
    if (!l) {
      const Json *r = n.get("range");
      l = bare_of(r ? r->get("begin") : nullptr, &m);
    }
    return l && file_of(l) >= 0;
  }
  unsigned line_of(int file, size_t offset) const {
    const std::string &t = *files_[file].text;
    unsigned line = 1;
    for (size_t i = 0; i < offset && i < t.size(); ++i) line += t[i] == '\n';
    return line > files_[file].lines_before ? line - files_[file].lines_before : 1;
  }
  bool fail_at(const Json &n, const std::string &msg) {
    bool m;
    const Json *l = bare_of(n.get("loc"), &m);
    if (!l && n.get("range")) l = bare_of(n.get("range")->get("begin"), &m);
    int f = l ? file_of(l) : -1;
    if (f >= 0)
      *err_ = files_[f].label + ":" + std::to_string(line_of(f, l->num("offset", 0))) +
              ": error: " + msg;
    else *err_ = msg;
    return false;
  }

  static bool newline_at(const std::string &t, size_t i) {
    return t[i] == '\n' && !(i > 0 && t[i - 1] == '\\');
  }
  // Whether offset i lies in a preprocessor directive (a macro definition).
  static bool in_directive(const std::string &t, size_t i) {
    size_t s = i;
    while (s > 0 && !newline_at(t, s - 1)) --s;
    while (s < t.size() && (t[s] == ' ' || t[s] == '\t')) ++s;
    return s < t.size() && t[s] == '#';
  }

  // The end of a macro invocation starting at o: the name, and its
  // parenthesized arguments if it is function-like.
  static size_t invocation_end(const std::string &t, size_t o, size_t len) {
    size_t i = o + len;
    while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i]))) ++i;
    if (i >= t.size() || t[i] != '(') return o + len;
    int depth = 0;
    for (; i < t.size(); ++i) {
      char c = t[i];
      if (c == '"' || c == '\'') {
        for (++i; i < t.size() && t[i] != c; ++i)
          if (t[i] == '\\') ++i;
      } else if (c == '(') {
        ++depth;
      } else if (c == ')' && --depth == 0) {
        return i + 1;
      }
    }
    return o + len;
  }

  // A node's range in one user file, as text to edit:
  //  - no macro involved: as written;
  //  - wholly within one macro invocation: only if spelled in a macro
  //    definition of the user's (the definition is edited);
  //  - else macro invocations at either end count whole (`x > MAX(a, b)`,
  //    `float4(a) > b`).
  bool resolve(const Json &n, Range *r) const {
    const Json *range = n.get("range");
    if (!range) return false;
    const Json *bl = range->get("begin"), *el = range->get("end");
    if (!bl || !el) return false;
    bool bm = false, em = false;
    const Json *b = bare_of(bl, &bm), *e = bare_of(el, &em);
    if (!b || !e) return false;
    // `f<g<T>>>`: clang ends g<T> in a '>' split off a `>>` token, spelled
    // in its scratch space; the text ends after the first '>'.
    const Json *x = em ? el->get("expansionLoc") : nullptr;
    if (x && file_of(e) < 0 && file_of(x) >= 0 &&
        files_[file_of(x)].text->compare(static_cast<size_t>(std::max(0LL, x->num("offset", 0))), 2,
                                         ">>") == 0) {
      const Json *bx = bm ? nullptr : b;
      int f = x ? file_of(x) : -1;
      if (f < 0 || !bx || file_of(bx) != f) return false;
      const std::string &t = *files_[f].text;
      long long bo = bx->num("offset", -1), xo = x->num("offset", -1);
      if (bo < 0 || xo < bo || static_cast<size_t>(xo) >= t.size() ||
          t[static_cast<size_t>(xo)] != '>')
        return false;
      *r = Range{f, static_cast<size_t>(bo), static_cast<size_t>(xo) + 1};
      return true;
    }
    const Json *bx = bm ? bl->get("expansionLoc") : b, *ex = em ? el->get("expansionLoc") : e;
    if (!bx || !ex) return false;
    if (bm && em && bx->num("offset", -1) == ex->num("offset", -1) &&
        file_of(bx) == file_of(ex)) {
      // One invocation: edit the user's macro definition if it is spelled
      // there, or the arguments of a vector constructor (float4(a > b): the
      // shim passes them on unchanged).
      int f = file_of(b);
      if (f < 0 || f != file_of(e)) return false;
      long long bo = b->num("offset", -1), eo = e->num("offset", -1) + e->num("tokLen", 0);
      const std::string &t = *files_[f].text;
      if (bo < 0 || eo < bo || static_cast<size_t>(eo) > t.size()) return false;
      if (in_directive(t, static_cast<size_t>(bo))) {
        for (long long i = bo; i < eo; ++i)
          if (newline_at(t, static_cast<size_t>(i))) return false;
      } else {
        int xf = file_of(bx);
        long long xo = bx->num("offset", -1), xl = bx->num("tokLen", 0);
        if (xf != f || xo < 0 || xo >= bo ||
            !msl_vector_type_name(files_[xf].text->substr(static_cast<size_t>(xo),
                                                          static_cast<size_t>(xl))))
          return false;
      }
      *r = Range{f, static_cast<size_t>(bo), static_cast<size_t>(eo)};
      return true;
    }
    int f = file_of(bx);
    if (f < 0 || f != file_of(ex)) return false;
    const std::string &t = *files_[f].text;
    long long bo = bx->num("offset", -1), eo = ex->num("offset", -1);
    if (bo < 0 || eo < 0 || static_cast<size_t>(eo) >= t.size()) return false;
    size_t end = em ? invocation_end(t, static_cast<size_t>(eo),
                                     static_cast<size_t>(ex->num("tokLen", 0)))
                    : static_cast<size_t>(eo + ex->num("tokLen", 0));
    // `f<g<T>>>`: a range that ends inside a split `>>` ends at its first '>'
    if (!em && ex->num("tokLen", 0) == 2 && t.compare(static_cast<size_t>(eo), 2, ">>") == 0)
      end = static_cast<size_t>(eo) + 1;
    if ((bm && in_directive(t, static_cast<size_t>(bo))) ||
        (em && in_directive(t, static_cast<size_t>(eo))) || static_cast<size_t>(bo) > end ||
        end > t.size())
      return false;
    *r = Range{f, static_cast<size_t>(bo), end};
    return true;
  }
  void add(int file, size_t offset, size_t remove, std::string text, int group, int depth) {
    pending_[file].push_back({{offset, remove, std::move(text)}, group, depth, seq_++});
  }
  // Template instantiations repeat their pattern's code: one rewrite per
  // piece of source.
  static std::string range_key(const Range &r, char what) {
    return std::to_string(r.file) + ":" + std::to_string(r.begin) + ":" + std::to_string(r.end) +
           what;
  }
  bool first_time(const Range &r, char what) { return done_.insert(range_key(r, what)).second; }
  void wrap(const Json &n, int depth, const char *open, const char *close) {
    Range r;
    if (!resolve(n, &r) || !first_time(r, 'w')) return;
    add(r.file, r.begin, 0, open, 1, depth);
    add(r.file, r.end, 0, close, 0, depth);
  }
  // p += x -> ::__mb::step_by(p, x, 1); p -= x -> ::__mb::step_by(p, x, -1)
  // (only a named variable on the left: the helper takes it by reference)
  void compound_pointer_step(const Json &n, int depth, size_t first, std::string opcode = "") {
    if (opcode.empty()) opcode = n.str("opcode");
    const Json *inner = n.get("inner");
    if (!inner || inner->items.size() != first + 2 ||
        inner->items[first].str("kind") != "DeclRefExpr")
      return;
    Range whole, lhs, rhs;
    if (!resolve(n, &whole) || !resolve(inner->items[first], &lhs) ||
        !resolve(inner->items[first + 1], &rhs) || lhs.file != whole.file ||
        rhs.file != whole.file || !first_time(whole, 'a'))
      return;
    const std::string &t = *files_[whole.file].text;
    size_t op = t.find(opcode, lhs.end);
    if (op == std::string::npos || op + 2 > rhs.begin) return;
    add(whole.file, lhs.begin, 0, "::__mb::step_by(", 1, depth);
    add(whole.file, op, 2, ",", 2, depth);
    add(whole.file, rhs.end, 0, opcode == "+=" ? ", 1)" : ", -1)", 0, depth);
  }
  // V(a, b) -> ::__mb::construct<V>(a, b)
  void construct(const Json &n, int depth) {
    Range r;
    if (!resolve(n, &r) || !first_time(r, 'k')) return;
    const std::string &t = *files_[r.file].text;
    int angle = 0;
    size_t open = std::string::npos;
    for (size_t i = r.begin; i < r.end && open == std::string::npos; ++i) {
      if (t[i] == '<') ++angle;
      else if (t[i] == '>') --angle;
      else if (t[i] == '(' && angle == 0) open = i;
      else if (t[i] == '{' || t[i] == ';') return; // V{a, b}: a list, fine as it is
    }
    if (open == std::string::npos || open == r.begin) return;
    add(r.file, r.begin, 0, "::__mb::construct<", 1, depth);
    add(r.file, open, 0, ">", 0, depth);
  }
  // short2 v(a, b) -> short2 v = ::__mb::construct<short2-of-v>(a, b)
  void direct_vector_init(const Json &var, int depth) {
    bool macro;
    const Json *at = bare_of(var.get("loc"), &macro);
    if (!at || macro) return;
    int f = file_of(at);
    if (f < 0) return;
    const std::string &t = *files_[f].text;
    size_t i = static_cast<size_t>(at->num("offset", 0) + at->num("tokLen", 0));
    while (i < t.size() && (t[i] == ' ' || t[i] == '\t')) ++i;
    if (i >= t.size() || t[i] != '(') return;
    Range key{f, i, i + 1};
    if (!first_time(key, 'd')) return;
    add(f, i, 0,
        " = ::__mb::construct<::__mb::clean<decltype(" + var.str("name") + ")>>", 2, depth);
  }
  // Casts between half and bfloat, which clang refuses and MSL allows:
  // static_cast<T>(x) -> ::__mb::fpcast<T>(x), which keeps every other
  // cast's meaning.
  void float_cast(const Json &n, int depth) {
    Range r;
    if (!resolve(n, &r) || r.end <= r.begin) return;
    const std::string &t = *files_[r.file].text;
    // (bfloat(h) and half(b) are the shim's macros; a C-style (bfloat)h
    // stays refused, with clang's message.)
    if (t.compare(r.begin, 11, "static_cast") == 0 && first_time(r, 's'))
      add(r.file, r.begin, 11, "::__mb::fpcast", 2, depth);
  }
  // Fewer initializers than the vector type's components.
  static bool short_list(const Json &var, const Json &list) {
    std::string t = type_text(var);
    size_t at = t.find("ext_vector_type(");
    if (at == std::string::npos) return false;
    if (!std::isdigit(static_cast<unsigned char>(t[at + 16]))) return true; // N from a template
    int n = std::atoi(t.c_str() + at + 16);
    const Json *items = list.get("inner");
    return n > 0 && (!items || static_cast<int>(items->items.size()) < n);
  }
  // = {a, b, c} -> = ::__mb::vpad(a, b, c); v{a, b} -> v(::__mb::vpad(a, b))
  void short_vector_list(const Json &list, int depth) {
    Range r;
    if (!resolve(list, &r) || !first_time(r, 'p')) return;
    const std::string &t = *files_[r.file].text;
    if (t[r.begin] != '{' || r.end == 0 || t[r.end - 1] != '}') return;
    size_t b = r.begin;
    while (b > 0 && std::isspace(static_cast<unsigned char>(t[b - 1]))) --b;
    bool copy = b > 0 && t[b - 1] == '=';
    add(r.file, r.begin, 1, copy ? "::__mb::vpad(" : "(::__mb::vpad(", 2, depth);
    add(r.file, r.end - 1, 1, copy ? ")" : "))", 2, depth);
  }
  // {x, y, z} -> ::__mb::vlist(x, y, z)
  void brace_argument(const Json &list, int depth) {
    Range r;
    if (!resolve(list, &r) || !first_time(r, 'b')) return;
    const std::string &t = *files_[r.file].text;
    if (t[r.begin] != '{' || r.end == 0 || t[r.end - 1] != '}') return;
    add(r.file, r.begin, 1, "::__mb::vlist(", 2, depth);
    add(r.file, r.end - 1, 1, ")", 2, depth);
  }
  // (T)x -> ::__mb::vcast<T>(x)
  void vector_cast(const Json &n, int depth) {
    const Json *inner = n.get("inner");
    Range r, sub;
    if (!inner || inner->items.empty() || !resolve(n, &r) || !resolve(inner->items.back(), &sub) ||
        sub.file != r.file || !first_time(r, 'c'))
      return;
    const std::string &t = *files_[r.file].text;
    if (t[r.begin] != '(' || sub.begin <= r.begin) return;
    size_t rp = sub.begin;
    while (rp > r.begin && t[rp - 1] != ')') {
      if (!std::isspace(static_cast<unsigned char>(t[rp - 1]))) return;
      --rp;
    }
    if (rp <= r.begin + 1) return;
    add(r.file, r.begin, 1, "::__mb::vcast<", 2, depth);
    add(r.file, rp - 1, 1, ">(", 2, depth);
    add(r.file, sub.end, 0, ")", 0, depth);
  }
  // c ? a : b with a vector c -> ::metal::vsel(c, a, b)
  void select(const Json &n, int depth) {
    const auto &k = n.get("inner")->items;
    Range r, c, a, b;
    if (!resolve(n, &r) || !resolve(k[0], &c) || !resolve(k[1], &a) || !resolve(k[2], &b) ||
        c.file != r.file || a.file != r.file || b.file != r.file)
      return;
    const std::string &t = *files_[r.file].text;
    size_t q = t.find('?', c.end), colon = t.find(':', a.end);
    if (q == std::string::npos || q >= a.begin || colon == std::string::npos || colon >= b.begin ||
        !first_time(r, 's'))
      return;
    add(r.file, c.begin, 0, "::metal::vsel(", 1, depth);
    add(r.file, q, 1, ",", 2, depth);
    add(r.file, colon, 1, ",", 2, depth);
    add(r.file, b.end, 0, ")", 0, depth);
  }

  // `threadgroup T a[N], b;` in the kernel becomes
  //   typedef threadgroup T __mb_tgt0[N], __mb_tgt1;
  //   __mb_tgt0 &a = __mb::tg_var<__mb_tgt0, 0>(); __mb_tgt1 &b = ...;
  // on the same line: the types stay the user's own tokens.
  //
  // In the file's other kernels (not run) the variables become references
  // to nothing, so that the file compiles (C++ for OpenCL allows threadgroup
  // variables in OpenCL kernels only) without taking threadgroup memory.
  bool threadgroup_decls(const Json &stmt, int depth, bool target) {
    const Json *inner = stmt.get("inner");
    if (!inner) return true;
    std::vector<const Json *> vars;
    bool shared = false, per_thread = false;
    for (const Json &d : inner->items) {
      if (d.str("kind") != "VarDecl" || !has_mark(d, MB_MARK_THREADGROUP)) continue;
      vars.push_back(&d);
      (pointer_like(d) ? per_thread : shared) = true;
    }
    if (!shared) return true;
    const Json &first = *vars.front();
    if (per_thread)
      return fail_at(first, "threadgroup variable '" + first.str("name") +
                                "': declare threadgroup arrays and threadgroup pointers in "
                                "separate statements");
    Range whole;
    if (!resolve(stmt, &whole))
      return fail_at(first, "threadgroup variable '" + first.str("name") +
                                "': cannot locate its declaration (is it written by a macro?)");
    std::string after;
    for (const Json *v : vars) {
      std::string name = v->str("name");
      std::string init = v->str("init");
      if ((init == "c" || init == "list") && !drop_initializer(*v, whole.file, depth))
        return fail_at(*v, "threadgroup variable '" + name +
                               "' has an initializer the simulator cannot locate; write it "
                               "without one and store the values");
      bool macro;
      const Json *at = bare_of(v->get("loc"), &macro);
      if (!at || macro || file_of(at) != whole.file)
        return fail_at(*v, "threadgroup variable '" + name +
                               "' is declared through a macro; the simulator needs it written "
                               "out");
      std::string alias;
      if (target) {
        unsigned id = out_->threadgroup_vars++;
        alias = "__mb_tgt" + std::to_string(id);
        after += " " + alias + " &" + name + " = ::__mb::tg_var<" + alias + ", " +
                 std::to_string(id) + ">();";
      } else {
        alias = "__mb_tgu" + std::to_string(unused_vars_++);
        after += " " + alias + " &" + name + " = ::__mb::tg_unused<" + alias + ">();";
      }
      add(whole.file, static_cast<size_t>(at->num("offset", 0)),
          static_cast<size_t>(at->num("tokLen", 0)), alias, 2, depth);
    }
    add(whole.file, whole.begin, 0, "typedef ", 1, depth);
    add(whole.file, whole.end, 0, after, 0, depth);
    return true;
  }

  // `threadgroup float s[32] = {0};` compiles with Metal, but threadgroup
  // memory is not initialized by it on a GPU (MLX zeroes such arrays by hand
  // after declaring them so): the simulator drops the initializer, and the
  // variable starts poisoned like every other, so a kernel that relies on it
  // fails here as it may on a Mac.
  bool drop_initializer(const Json &var, int file, int depth) {
    const Json *inner = var.get("inner"), *init = nullptr;
    if (!inner) return false;
    for (const Json &c : inner->items) // the initializer, not an attribute
      if (c.str("kind").size() > 4 && c.str("kind").compare(c.str("kind").size() - 4, 4, "Expr") == 0)
        init = &c;
    Range r;
    if (!init || !resolve(*init, &r) || r.file != file) return false;
    const std::string &t = *files_[file].text;
    size_t eq = r.begin;
    while (eq > 0 && std::isspace(static_cast<unsigned char>(t[eq - 1]))) --eq;
    if (eq > 0 && t[eq - 1] == '=') --eq; // `= {0}`; `{0}` alone has none
    add(file, eq, r.end - eq, "", 2, depth);
    return true;
  }

  std::string template_args(const Json &fn) {
    // The template's parameters, to spell a bool argument as a bool: the
    // dump gives `true` as the value -1.
    std::vector<bool> is_bool;
    if (template_ && template_->get("inner"))
      for (const Json &p : template_->get("inner")->items) {
        std::string k = p.str("kind");
        if (k == "NonTypeTemplateParmDecl") {
          const Json *t = p.get("type");
          std::string q = t ? t->str("qualType") : "";
          is_bool.push_back(q == "bool" || q == "const bool");
        } else if (k == "TemplateTypeParmDecl" || k == "TemplateTemplateParmDecl") {
          is_bool.push_back(false);
        }
      }
    std::string s;
    size_t position = 0;
    if (const Json *inner = fn.get("inner"))
      for (const Json &c : inner->items) {
        if (c.str("kind") != "TemplateArgument") continue;
        bool boolean = position < is_bool.size() && is_bool[position];
        ++position;
        std::string a;
        if (const Json *t = c.get("type")) a = t->str("qualType");
        else if (const Json *v = c.get("value"))
          a = v->kind == Json::Bool ? (v->boolean ? "true" : "false")
              : boolean             ? (v->text == "0" ? "false" : "true")
                                    : v->text;
        if (a.empty()) bad_template_ = true;
        s += (s.empty() ? "" : ", ") + a;
      }
    return s;
  }

public:
  bool bad_template_ = false;

  // After visit(): the other kernels' threadgroup variables, except where
  // they are the target's own source (instantiations of one template).
  bool other_kernels_threadgroup_decls() {
    for (const auto &[stmt, depth] : other_kernels_) {
      Range r;
      if (!resolve(*stmt, &r) || done_.count(range_key(r, 'g')) || !first_time(r, 'u')) continue;
      if (!threadgroup_decls(*stmt, depth, false)) return false;
    }
    return true;
  }

private:
  const std::vector<SourceFile> &files_;
  KernelAst *out_;
  std::string *err_;
  std::vector<std::vector<Pending>> pending_;
  std::unordered_map<const Json *, int> loc_file_;
  const Json *target_ = nullptr;
  const Json *target_pattern_ = nullptr; // a template kernel's pattern
  const Json *template_ = nullptr;       // (find_kernels: the enclosing template)
  std::vector<std::pair<const Json *, int>> other_kernels_;
  unsigned unused_vars_ = 0;
  std::string callable_;
  bool in_template_ = false;
  size_t seq_ = 0;
  std::set<std::string> done_;
  std::set<std::string> mutable_records_;
  bool bare_linkage_ = false; // inside `extern "C" <one declaration>`
};

} // namespace

AstResult analyze_kernel_ast(const std::string &json, const std::vector<SourceFile> &files,
                             size_t namespace_end, const std::string &function, KernelAst *out,
                             std::string *err) {
  std::vector<Json> decls;
  if (!parse_json_values(json, &decls, err)) return AstResult::Error;
  // Code outside namespace __mbu would escape the checks below (inline
  // assembly at global scope, say): the user's code must not close it.
  unsigned spaces = 0;
  bool whole = false;
  for (const Json &d : decls) {
    if (d.str("kind") != "NamespaceDecl" || d.str("name") != "__mbu") continue;
    ++spaces;
    const Json *range = d.get("range");
    const Json *end = range ? range->get("end") : nullptr;
    whole = end && !end->get("spellingLoc") && end->num("offset", -1) == (long long)namespace_end;
  }
  if (spaces != 1 || !whole) {
    *err = "the source closes or reopens the simulator's namespace __mbu (unbalanced braces?)";
    return AstResult::Error;
  }
  Analyzer an(files, out, err);
  int cur = -1;
  for (const Json &d : decls) an.index_locations(d, &cur);
  for (const Json &d : decls) an.find_kernels(d, function, "");
  const Json *kernel = an.target();
  if (!kernel) return AstResult::NotFound;
  if (an.bad_template_) {
    *err = "kernel '" + function + "': cannot name its template instantiation";
    return AstResult::Error;
  }
  out->callable = an.callable();

  for (const Annotation &a : annotations(*kernel))
    if (a.ints.size() == 2 && a.ints[0] == MB_MARK_MAX_THREADS)
      out->max_total_threads = static_cast<unsigned>(a.ints[1]);
  if (const Json *inner = kernel->get("inner"))
    for (const Json &p : inner->items) {
      if (p.str("kind") != "ParmVarDecl") continue;
      ParamBinding b;
      b.name = p.str("name");
      std::string shown = b.name.empty() ? "#" + std::to_string(out->params.size() + 1) : b.name;
      for (const Annotation &a : annotations(p)) {
        if (a.ints.size() != 2) continue;
        if (a.ints[0] == MB_PARAM_BUFFER || a.ints[0] == MB_PARAM_THREADGROUP ||
            a.ints[0] == MB_PARAM_ATTR) {
          b.kind = static_cast<int>(a.ints[0]);
          b.index = static_cast<int>(a.ints[1]);
        } else if (a.ints[0] == MB_MARK_FUNCTION_CONSTANT) {
          b.absent = a.ints[1] == 0;
        } else if (a.ints[0] == MB_PARAM_UNSUPPORTED) {
          static const char *what[] = {"", "textures", "samplers", "[[stage_in]]"};
          *err = "parameter '" + shown + "' of kernel '" + function + "': " +
                 what[a.ints[1] >= 1 && a.ints[1] <= 3 ? a.ints[1] : 0] +
                 " are not supported by the simulator";
          return AstResult::Error;
        }
      }
      if (b.kind == 0) {
        // No attribute: Metal gives device/constant and threadgroup
        // pointers and references the first free index, in order.
        if (!pointer_like(p)) {
          *err = "parameter '" + shown + "' of kernel '" + function +
                 "' has no [[buffer(n)]], [[threadgroup(n)]] or thread-position attribute";
          return AstResult::Error;
        }
        b.kind = has_mark(p, MB_MARK_THREADGROUP) ? MB_PARAM_THREADGROUP : MB_PARAM_BUFFER;
        b.index = -1; // assigned below
      }
      if ((b.kind == MB_PARAM_BUFFER || b.kind == MB_PARAM_THREADGROUP) && b.index != -1 &&
          (b.index < 0 || b.index >= MB_SIM_MAX_BINDINGS)) {
        *err = "parameter '" + shown + "' of kernel '" + function + "': index " +
               std::to_string(b.index) + " is out of range (0.." +
               std::to_string(MB_SIM_MAX_BINDINGS - 1) + ")";
        return AstResult::Error;
      }
      out->params.push_back(b);
    }
  for (int kind : {MB_PARAM_BUFFER, MB_PARAM_THREADGROUP}) {
    bool used[MB_SIM_MAX_BINDINGS] = {};
    for (const ParamBinding &b : out->params)
      if (b.kind == kind && b.index >= 0) used[b.index] = true;
    int next = 0;
    for (ParamBinding &b : out->params) {
      if (b.kind != kind || b.index != -1) continue;
      while (next < MB_SIM_MAX_BINDINGS && used[next]) ++next;
      if (next == MB_SIM_MAX_BINDINGS) {
        *err = "kernel '" + function + "' has more than 31 buffer parameters";
        return AstResult::Error;
      }
      b.index = next;
      used[next] = true;
    }
  }
  for (const Json &d : decls)
    if (!an.visit(d, nullptr, false, 0)) return AstResult::Error;
  if (!an.other_kernels_threadgroup_decls()) return AstResult::Error;
  an.find_mutable_records(decls);
  for (const Json &d : decls)
    if (!an.program_scope(d, Analyzer::Scope::Namespace, false, "")) return AstResult::Error;
  an.finish();
  return AstResult::Ok;
}

} // namespace mbsim
