// Confines the compiler: kernel source is untrusted, and clang follows every
// #include, #embed and __has_include it is given, with our permissions. The
// child that runs clang may read only the toolchain, our shim and its own
// build folder, and write only the build folder; it gets an empty
// environment (PATH, LANG, TMPDIR=build folder), so none of the user's
// variables reach the compiler or its messages.
//
// Strongest first:
//  - landlock+namespaces: a new root holding only those paths, in a user +
//    mount namespace of our own, with Landlock's allow-list on top;
//  - landlock: the allow-list alone (applied in the child just before
//    exec). Other files stay unreadable, but not invisible: stat() is not
//    confined, so `#include` of one fails with "Permission denied" rather
//    than "not found" (one bit per compile: whether a path exists);
//  - bubblewrap: the new root, built by `bwrap` when it is installed;
//  - namespaces: the new root, built in the child;
//  - none: the textual include checks (include_check.h) stand alone.
// Each is used only after probe compiles under it have worked and shown
// that a file outside cannot be read.
#pragma once

#include "process.h"

#include <string>
#include <vector>

namespace mbsim {

enum class Confinement { LandlockNamespaces, Landlock, Bubblewrap, Namespaces, None };

// "landlock+namespaces", "landlock", "bubblewrap", "namespaces", "none"
const char *confinement_name(Confinement how);
bool confinement_from_name(const std::string &name, Confinement *out);

// What the compiler may touch: files or folders to read (and execute), as
// the programs name them (symlinks are followed and kept), and the one
// folder it may also write.
struct ConfinePlan {
  std::vector<std::string> read;
  std::string write;
};

// The confinements this machine can offer, strongest first (cheap checks:
// no process is started), ending with None. `bwrap` is its path or "".
std::vector<Confinement> offered_confinements(const std::string &bwrap);

// Landlock's ABI version here (0 if unavailable).
int landlock_abi();

// Runs argv[0] (an absolute path) under `how` with cwd, stdin from
// /dev/null, stdout and stderr to files, and a time limit; the environment
// is PATH=/usr/bin:/bin, LANG=C, TMPDIR=plan.write. `bwrap` is bubblewrap's
// path for Confinement::Bubblewrap.
ProcessResult run_confined(Confinement how, const ConfinePlan &plan, const std::string &bwrap,
                           const std::vector<std::string> &argv, const std::string &cwd,
                           const std::string &stdout_path, const std::string &stderr_path,
                           int timeout_ms);

} // namespace mbsim
