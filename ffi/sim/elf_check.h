// Loading a compiled kernel must run none of its code: the runner dlopen()s
// kernels before it sandboxes itself, so a kernel.so with constructors,
// destructors, IFUNC resolvers or extra libraries would get code run outside
// the sandbox. This checks the file before dlopen (the compile step never
// produces such files; anything else is refused).
#pragma once

#include <string>

namespace mbsim {

// True if `path` is an ELF shared object of this machine whose loading runs
// no code of its own; otherwise false with *why (one line).
bool elf_is_inert(const std::string &path, std::string *why);

} // namespace mbsim
