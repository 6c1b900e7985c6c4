// Loading a compiled kernel must run none of its code: the runner dlopen()s
// kernels before it sandboxes itself, so a kernel.so with constructors,
// destructors, IFUNC resolvers or extra libraries would get code run outside
// the sandbox. This checks the file before dlopen (the compile step never
// produces such files; anything else is refused).
//
// Nor may a kernel keep state from one launch to the next (Metal has none):
// the file's writable memory that stays writable after loading (.data,
// .bss: outside PT_GNU_RELRO) may hold only the shim's own objects
// (mb_kernel_rt, mb_kernel_tg_offsets) and the sanitizer's unnamed source
// locations; any named object there came from kernel code (a mutable
// program-scope or static variable, or a guard of one initialized at run
// time), as does any thread-local storage. The compile step refuses these
// from the AST first, with the source line; this is the second net.
#pragma once

#include <string>
#include <vector>

namespace mbsim {

// True if `path` is an ELF shared object of this machine whose loading runs
// no code of its own and which holds no kernel state in writable memory;
// otherwise false with *why (one line).
bool elf_is_inert(const std::string &path, std::string *why);

// The names of the symbols `path` takes from other libraries (undefined
// dynamic symbols). False with *why if the file cannot be read as ELF.
bool elf_imports(const std::string &path, std::vector<std::string> *names, std::string *why);

// An executable's program interpreter (PT_INTERP), "" if none or unreadable.
std::string elf_interpreter(const std::string &path);

} // namespace mbsim
