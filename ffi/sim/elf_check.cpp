// Checks a kernel.so for code that would run when it is loaded (elf_check.h).
#include "elf_check.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cxxabi.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace mbsim {

namespace {

#if defined(__x86_64__)
constexpr unsigned kMachine = EM_X86_64;
constexpr unsigned kIrelative = R_X86_64_IRELATIVE;
#elif defined(__aarch64__)
constexpr unsigned kMachine = EM_AARCH64;
constexpr unsigned kIrelative = R_AARCH64_IRELATIVE;
#else
#error "elf_check: add this machine"
#endif

// Libraries a kernel.so may name: the C runtime, already in the runner.
bool allowed_library(const char *name) {
  for (const char *ok : {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2",
                         "ld-linux-aarch64.so.1"})
    if (std::strcmp(name, ok) == 0) return true;
  return false;
}

struct Image {
  std::vector<unsigned char> bytes;
  std::vector<Elf64_Phdr> loads;
  std::vector<Elf64_Shdr> sections;

  // The symbols of a SHT_SYMTAB or SHT_DYNSYM section, with their names.
  bool symbols(unsigned type, std::vector<std::pair<Elf64_Sym, std::string>> *out) const {
    for (const Elf64_Shdr &sh : sections) {
      if (sh.sh_type != type) continue;
      if (sh.sh_link >= sections.size() || sh.sh_entsize != sizeof(Elf64_Sym)) return false;
      const Elf64_Shdr &str = sections[sh.sh_link];
      if (sh.sh_offset + sh.sh_size > bytes.size() || str.sh_offset + str.sh_size > bytes.size())
        return false;
      for (size_t k = 0; k + sizeof(Elf64_Sym) <= sh.sh_size; k += sizeof(Elf64_Sym)) {
        Elf64_Sym sym;
        std::memcpy(&sym, bytes.data() + sh.sh_offset + k, sizeof sym);
        if (sym.st_name >= str.sh_size) return false;
        const char *name = reinterpret_cast<const char *>(bytes.data() + str.sh_offset + sym.st_name);
        size_t len = strnlen(name, str.sh_size - sym.st_name);
        out->emplace_back(sym, std::string(name, len));
      }
      return true;
    }
    return false;
  }

  // File offset of a virtual address (through the PT_LOAD segments).
  bool offset_of(Elf64_Addr addr, size_t len, size_t *off) const {
    for (const Elf64_Phdr &p : loads)
      if (addr >= p.p_vaddr && addr + len <= p.p_vaddr + p.p_filesz) {
        *off = static_cast<size_t>(p.p_offset + (addr - p.p_vaddr));
        return *off + len <= bytes.size();
      }
    return false;
  }
};

bool read_whole(const std::string &path, std::vector<unsigned char> *out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  bool ok = fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < (256 << 20);
  if (ok) {
    out->resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (ok && got < out->size()) {
      ssize_t k = read(fd, out->data() + got, out->size() - got);
      if (k <= 0) ok = false;
      else got += static_cast<size_t>(k);
    }
  }
  close(fd);
  return ok;
}

std::string demangled(const std::string &name) {
  int status = 0;
  char *d = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : name;
  std::free(d);
  for (const char *ns : {"__mbu::"}) // the namespace the compile step wraps kernels in
    for (size_t at; (at = out.find(ns)) != std::string::npos;) out.erase(at, std::strlen(ns));
  return out;
}

// Reads an ELF64 file of this machine: program and section headers.
bool load(const std::string &path, Image *im, Elf64_Ehdr *eh, std::vector<Elf64_Phdr> *phs,
          std::string *why) {
  if (!read_whole(path, &im->bytes)) return *why = "cannot read " + path, false;
  if (im->bytes.size() < sizeof(Elf64_Ehdr)) return *why = "not an ELF file", false;
  std::memcpy(eh, im->bytes.data(), sizeof *eh);
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_machine != kMachine || eh->e_phentsize != sizeof(Elf64_Phdr))
    return *why = "not an ELF file for this machine", false;
  phs->resize(eh->e_phnum);
  if (eh->e_phoff + phs->size() * sizeof(Elf64_Phdr) > im->bytes.size())
    return *why = "truncated program headers", false;
  std::memcpy(phs->data(), im->bytes.data() + eh->e_phoff, phs->size() * sizeof(Elf64_Phdr));
  for (const Elf64_Phdr &p : *phs)
    if (p.p_type == PT_LOAD) im->loads.push_back(p);
  if (eh->e_shnum && eh->e_shentsize == sizeof(Elf64_Shdr) &&
      eh->e_shoff + eh->e_shnum * sizeof(Elf64_Shdr) <= im->bytes.size()) {
    im->sections.resize(eh->e_shnum);
    std::memcpy(im->sections.data(), im->bytes.data() + eh->e_shoff,
                im->sections.size() * sizeof(Elf64_Shdr));
  }
  return true;
}

// The objects of the shim that live in writable memory (mb_sim_entry.h),
// and the linker's markers of its bounds.
bool shim_writable(const std::string &name, const Elf64_Sym &sym) {
  if (name == "mb_kernel_rt" || name == "mb_kernel_tg_offsets") return true;
  for (const char *marker : {"_edata", "__bss_start", "_end", "__data_start", "data_start",
                             "_GLOBAL_OFFSET_TABLE_", "_DYNAMIC"})
    if (name == marker) return sym.st_size == 0;
  return false;
}

// No kernel state in memory that stays writable after loading (elf_check.h).
bool no_writable_state(const Image &im, const std::vector<Elf64_Phdr> &phs, std::string *why) {
  Elf64_Addr relro_begin = 0, relro_end = 0;
  for (const Elf64_Phdr &p : phs) {
    if (p.p_type == PT_TLS)
      return *why = "it has thread-local variables (Metal has none)", false;
    if (p.p_type == PT_GNU_RELRO) relro_begin = p.p_vaddr, relro_end = p.p_vaddr + p.p_memsz;
  }
  auto writable = [&](Elf64_Addr a) {
    if (a >= relro_begin && a < relro_end) return false;
    for (const Elf64_Phdr &p : im.loads)
      if ((p.p_flags & PF_W) && a >= p.p_vaddr && a < p.p_vaddr + p.p_memsz) return true;
    return false;
  };
  std::vector<std::pair<Elf64_Sym, std::string>> syms;
  if (!im.symbols(SHT_SYMTAB, &syms))
    return *why = "it has no symbol table to check its writable memory against", false;
  for (const auto &[sym, name] : syms) {
    unsigned type = ELF64_ST_TYPE(sym.st_info);
    if (type == STT_SECTION || type == STT_FILE || sym.st_shndx == SHN_UNDEF ||
        sym.st_shndx == SHN_ABS || name.empty())
      continue;
    bool in = writable(sym.st_value) ||
              (sym.st_size && writable(sym.st_value + sym.st_size - 1));
    if (in && !shim_writable(name, sym))
      return *why = "'" + demangled(name) +
                    "' is kept in writable memory across launches (a mutable program-scope or "
                    "static variable, or one initialized at run time); Metal allows only constant "
                    "program-scope data",
             false;
  }
  return true;
}

} // namespace

bool elf_imports(const std::string &path, std::vector<std::string> *names, std::string *why) {
  Image im;
  Elf64_Ehdr eh;
  std::vector<Elf64_Phdr> phs;
  if (!load(path, &im, &eh, &phs, why)) return false;
  std::vector<std::pair<Elf64_Sym, std::string>> syms;
  if (!im.symbols(SHT_DYNSYM, &syms)) return *why = "no dynamic symbol table", false;
  names->clear();
  for (const auto &[sym, name] : syms)
    if (sym.st_shndx == SHN_UNDEF && !name.empty()) names->push_back(name);
  return true;
}

std::string elf_interpreter(const std::string &path) {
  Image im;
  Elf64_Ehdr eh;
  std::vector<Elf64_Phdr> phs;
  std::string why;
  if (!load(path, &im, &eh, &phs, &why)) return "";
  for (const Elf64_Phdr &p : phs)
    if (p.p_type == PT_INTERP && p.p_offset + p.p_filesz <= im.bytes.size() && p.p_filesz > 1)
      return std::string(reinterpret_cast<const char *>(im.bytes.data() + p.p_offset),
                         strnlen(reinterpret_cast<const char *>(im.bytes.data() + p.p_offset),
                                 p.p_filesz));
  return "";
}

bool elf_is_inert(const std::string &path, std::string *why) {
  Image im;
  Elf64_Ehdr eh;
  std::vector<Elf64_Phdr> phs;
  if (!load(path, &im, &eh, &phs, why)) return false;
  if (eh.e_type != ET_DYN) return *why = "not a shared object for this machine", false;
  const Elf64_Phdr *dyn = nullptr;
  for (const Elf64_Phdr &p : phs) {
    if (p.p_type == PT_DYNAMIC) dyn = &p;
    if (p.p_type == PT_INTERP) return *why = "it asks for a program interpreter", false;
  }
  if (!dyn || dyn->p_offset + dyn->p_filesz > im.bytes.size())
    return *why = "no dynamic section", false;

  std::vector<Elf64_Dyn> ds(dyn->p_filesz / sizeof(Elf64_Dyn));
  std::memcpy(ds.data(), im.bytes.data() + dyn->p_offset, ds.size() * sizeof(Elf64_Dyn));
  Elf64_Addr strtab = 0, rela = 0, jmprel = 0;
  Elf64_Xword strsz = 0, relasz = 0, pltrelsz = 0;
  std::vector<Elf64_Xword> needed;
  for (const Elf64_Dyn &d : ds) {
    switch (d.d_tag) {
    case DT_NULL: break;
    case DT_INIT:
    case DT_FINI:
    case DT_PREINIT_ARRAY:
      return *why = "it has initialization or finalization code", false;
    case DT_INIT_ARRAYSZ:
    case DT_FINI_ARRAYSZ:
    case DT_PREINIT_ARRAYSZ:
      if (d.d_un.d_val != 0)
        return *why = "it has constructors or destructors (program-scope variables in MSL need "
                      "constant initializers)",
               false;
      break;
    case DT_AUDIT:
    case DT_DEPAUDIT:
    case DT_AUXILIARY:
    case DT_FILTER:
      return *why = "it names audit or filter libraries", false;
    case DT_NEEDED: needed.push_back(d.d_un.d_val); break;
    case DT_STRTAB: strtab = d.d_un.d_ptr; break;
    case DT_STRSZ: strsz = d.d_un.d_val; break;
    case DT_RELA: rela = d.d_un.d_ptr; break;
    case DT_RELASZ: relasz = d.d_un.d_val; break;
    case DT_JMPREL: jmprel = d.d_un.d_ptr; break;
    case DT_PLTRELSZ: pltrelsz = d.d_un.d_val; break;
    case DT_REL:
    case DT_RELR: return *why = "unexpected relocation format", false;
    default: break;
    }
  }
  size_t stroff = 0;
  if (!needed.empty() && !im.offset_of(strtab, strsz, &stroff))
    return *why = "unreadable string table", false;
  for (Elf64_Xword n : needed) {
    if (n >= strsz) return *why = "bad library name", false;
    const char *name = reinterpret_cast<const char *>(im.bytes.data() + stroff + n);
    if (!memchr(name, 0, strsz - n) || !allowed_library(name))
      return *why = std::string("it needs a library other than the C library"), false;
  }
  // IFUNC resolvers run while relocating: no IRELATIVE relocations.
  for (auto [addr, size] : {std::pair{rela, relasz}, std::pair{jmprel, pltrelsz}}) {
    if (!size) continue;
    size_t off = 0;
    if (!im.offset_of(addr, size, &off)) return *why = "unreadable relocations", false;
    for (size_t k = 0; k + sizeof(Elf64_Rela) <= size; k += sizeof(Elf64_Rela)) {
      Elf64_Rela r;
      std::memcpy(&r, im.bytes.data() + off + k, sizeof r);
      if (ELF64_R_TYPE(r.r_info) == kIrelative)
        return *why = "it uses IFUNC resolvers", false;
    }
  }
  return no_writable_state(im, phs, why);
}

} // namespace mbsim
