// Running helper processes (the compiler) from the bridge: posix_spawn (safe
// in a multi-threaded host), output to files, a time limit.
#pragma once

#include <spawn.h>

#include <string>
#include <vector>

namespace mbsim {

struct ProcessResult {
  bool started = false;
  bool timed_out = false;
  int exit_code = -1; // or -signal
  std::string error;  // why it did not start
};

// Spawn attributes for a child that starts with default signal dispositions
// and an empty signal mask, whatever the host process (Deno) has set.
// Destroy with posix_spawnattr_destroy.
void clean_signal_attr(posix_spawnattr_t *attr);

ProcessResult run_process(const std::vector<std::string> &argv, const std::string &cwd,
                          const std::string &stdout_path, const std::string &stderr_path,
                          int timeout_ms);

// Finds an executable on PATH ("" if none).
std::string find_on_path(const std::string &name);

bool read_file(const std::string &path, std::string *out);
bool write_file(const std::string &path, const std::string &data);

} // namespace mbsim
