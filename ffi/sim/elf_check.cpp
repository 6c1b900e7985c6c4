// Checks a kernel.so for code that would run when it is loaded (elf_check.h).
#include "elf_check.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

} // namespace

bool elf_is_inert(const std::string &path, std::string *why) {
  Image im;
  if (!read_whole(path, &im.bytes)) return *why = "cannot read " + path, false;
  if (im.bytes.size() < sizeof(Elf64_Ehdr)) return *why = "not an ELF file", false;
  Elf64_Ehdr eh;
  std::memcpy(&eh, im.bytes.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_type != ET_DYN || eh.e_machine != kMachine || eh.e_phentsize != sizeof(Elf64_Phdr))
    return *why = "not a shared object for this machine", false;
  std::vector<Elf64_Phdr> phs(eh.e_phnum);
  if (eh.e_phoff + phs.size() * sizeof(Elf64_Phdr) > im.bytes.size())
    return *why = "truncated program headers", false;
  std::memcpy(phs.data(), im.bytes.data() + eh.e_phoff, phs.size() * sizeof(Elf64_Phdr));
  const Elf64_Phdr *dyn = nullptr;
  for (const Elf64_Phdr &p : phs) {
    if (p.p_type == PT_LOAD) im.loads.push_back(p);
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
  return true;
}

} // namespace mbsim
