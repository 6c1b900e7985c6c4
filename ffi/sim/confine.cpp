// The compiler's confinement (confine.h). Everything the child needs is
// prepared in the parent: after fork() in a multi-threaded host the child
// makes system calls only, then execs.
#include "confine.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace mbsim {

namespace {

// ---- Landlock (uapi, declared here: the system header may predate ABI 6) ----

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

struct LlRulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net; // ABI 4
  uint64_t scoped;             // ABI 6
};
struct __attribute__((packed)) LlPathBeneath {
  uint64_t allowed_access;
  int32_t parent_fd;
};
constexpr uint32_t kLlVersion = 1u << 0;
constexpr uint32_t kLlRulePathBeneath = 1;
enum : uint64_t {
  kFsExecute = 1ull << 0,
  kFsWriteFile = 1ull << 1,
  kFsReadFile = 1ull << 2,
  kFsReadDir = 1ull << 3,
  kFsRemoveDir = 1ull << 4,
  kFsRemoveFile = 1ull << 5,
  kFsMakeDir = 1ull << 7,
  kFsMakeReg = 1ull << 8,
  kFsRefer = 1ull << 13,    // ABI 2
  kFsTruncate = 1ull << 14, // ABI 3
  kFsIoctlDev = 1ull << 15, // ABI 5
};
constexpr uint64_t kNetBindTcp = 1, kNetConnectTcp = 2;                 // ABI 4
constexpr uint64_t kScopeAbstractUnixSocket = 1, kScopeSignal = 2;      // ABI 6
// Rights that apply to a file (not a folder); a rule on a file may hold only these.
constexpr uint64_t kFileRights = kFsExecute | kFsWriteFile | kFsReadFile | kFsTruncate | kFsIoctlDev;

uint64_t handled_fs(int abi) {
  uint64_t all = (1ull << 13) - 1; // ABI 1: execute .. make_sym
  if (abi >= 2) all |= kFsRefer;
  if (abi >= 3) all |= kFsTruncate;
  if (abi >= 5) all |= kFsIoctlDev;
  return all;
}

// A ruleset fd: read (and execute) plan.read, read and write plan.write,
// nothing else; no TCP; no signals or abstract sockets outside (ABI 6).
int landlock_ruleset(const ConfinePlan &plan, int abi, std::string *err) {
  LlRulesetAttr attr{handled_fs(abi), abi >= 4 ? kNetBindTcp | kNetConnectTcp : 0,
                     abi >= 6 ? kScopeAbstractUnixSocket | kScopeSignal : 0};
  size_t size = abi >= 6 ? sizeof attr : abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
  int rs = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, size, 0));
  if (rs < 0) {
    *err = std::string("landlock_create_ruleset: ") + std::strerror(errno);
    return -1;
  }
  const uint64_t read = kFsReadFile | kFsReadDir | kFsExecute;
  const uint64_t write = kFsReadFile | kFsReadDir | kFsWriteFile | kFsRemoveFile | kFsRemoveDir |
                         kFsMakeReg | kFsMakeDir | kFsRefer | kFsTruncate;
  std::vector<std::pair<std::string, uint64_t>> rules;
  for (const std::string &p : plan.read) rules.emplace_back(p, read);
  rules.emplace_back(plan.write, write);
  for (const auto &[path, rights] : rules) {
    int fd = open(path.c_str(), O_PATH | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
      if (fd >= 0) close(fd);
      continue; // a path this machine lacks: nothing to allow
    }
    LlPathBeneath rule{rights & attr.handled_access_fs, fd};
    if (!S_ISDIR(st.st_mode)) rule.allowed_access &= kFileRights;
    long rc = syscall(SYS_landlock_add_rule, rs, kLlRulePathBeneath, &rule, 0);
    int e = errno;
    close(fd);
    if (rc != 0) {
      *err = "landlock_add_rule(" + path + "): " + std::strerror(e);
      close(rs);
      return -1;
    }
  }
  return rs;
}

// ---- a new root (bubblewrap, namespaces): the plan's paths, symlinks kept ----

struct Bind {
  std::string src;
  bool dir = false;
  bool writable = false;
  unsigned long lock_flags = 0; // the mount's flags a user namespace may not drop
};
struct RootPlan {
  std::vector<std::pair<std::string, std::string>> symlinks; // path -> target
  std::vector<Bind> binds;
};

bool inside(const std::string &path, const std::string &dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir == "/" || path[dir.size()] == '/'));
}

std::string real(const std::string &p) {
  char *r = realpath(p.c_str(), nullptr);
  std::string s = r ? r : "";
  std::free(r);
  return s;
}

// "/usr/bin/../lib/x" -> "/usr/lib/x" (for a link's target: the folders
// before it hold no links, so this is where it points).
std::string normalized(const std::string &path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = j + 1;
  }
  std::string out;
  for (const std::string &p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

unsigned long lock_flags(const std::string &path) {
  struct statvfs v;
  if (statvfs(path.c_str(), &v) != 0) return MS_NOSUID | MS_NODEV;
  unsigned long f = MS_NOSUID | MS_NODEV;
  if (v.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (v.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (v.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (v.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

RootPlan root_plan(const ConfinePlan &plan) {
  RootPlan r;
  // Bind each path's real location once (the outermost of nested ones).
  std::vector<std::pair<std::string, bool>> reals; // path, writable
  for (const std::string &p : plan.read)
    if (std::string rp = real(p); !rp.empty()) reals.emplace_back(rp, false);
  if (std::string rw = real(plan.write); !rw.empty()) reals.emplace_back(rw, true);
  std::sort(reals.begin(), reals.end(),
            [](const auto &a, const auto &b) { return a.first.size() < b.first.size(); });
  for (const auto &[path, writable] : reals) {
    bool covered = false;
    for (const Bind &b : r.binds) covered |= inside(path, b.src) && b.writable == writable;
    if (covered) continue;
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;
    r.binds.push_back({path, S_ISDIR(st.st_mode), writable, lock_flags(path)});
  }
  // Recreate the symlinks on the way to each path as named (/lib64 ->
  // usr/lib64, /usr/bin/ld -> x86_64-linux-gnu-ld ...).
  auto covered = [&](const std::string &p) {
    for (const Bind &b : r.binds)
      if (inside(p, b.src)) return true;
    return false;
  };
  std::vector<std::string> todo(plan.read.begin(), plan.read.end());
  for (size_t n = 0; n < todo.size() && n < 256; ++n) {
    std::string path = todo[n], cur;
    size_t i = 1;
    while (i <= path.size()) {
      size_t j = path.find('/', i);
      if (j == std::string::npos) j = path.size();
      cur += "/" + path.substr(i, j - i);
      i = j + 1;
      if (covered(cur)) break;
      struct stat st;
      if (lstat(cur.c_str(), &st) != 0) break;
      if (S_ISLNK(st.st_mode)) {
        char buf[PATH_MAX];
        ssize_t k = readlink(cur.c_str(), buf, sizeof buf - 1);
        if (k <= 0) break;
        std::string target(buf, static_cast<size_t>(k));
        bool known = false;
        for (const auto &s : r.symlinks) known |= s.first == cur;
        if (!known) r.symlinks.emplace_back(cur, target);
        std::string next = target[0] == '/' ? target : cur.substr(0, cur.rfind('/') + 1) + target;
        if (i <= path.size()) next += "/" + path.substr(i);
        todo.push_back(normalized(next));
        break;
      }
    }
  }
  return r;
}

// ---- the child ----

struct Child {
  Confinement how = Confinement::None;
  const char *path = nullptr;
  std::vector<char *> argv, envp;
  const char *cwd = nullptr, *out = nullptr, *err = nullptr;
  int ruleset = -1;
  int report = -1; // write end of a close-on-exec pipe: {step, errno} if exec is not reached
  // Namespaces: the new root, prepared as strings.
  const char *root = nullptr;
  std::string uid_map, gid_map;
  std::vector<std::string> dirs, files;
  std::vector<std::pair<std::string, std::string>> links; // root+path -> target
  std::vector<std::pair<std::string, std::string>> binds; // src -> root+src
  std::vector<unsigned long> remount;                     // per bind: flags (0: stays writable)
};

[[noreturn]] void child_fail(const Child &c, int step) {
  int msg[2] = {step, errno};
  ssize_t ignored = write(c.report, msg, sizeof msg);
  (void)ignored;
  _exit(127);
}

bool write_proc(const char *path, const std::string &text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return ok;
}

// Steps, for the parent's message.
enum Step { kStdio = 1, kNoNewPrivs, kLandlock, kUnshare, kIdMap, kMount, kChroot, kChdir, kExec };

[[noreturn]] void child_main(const Child &c) {
  // Default dispositions and an empty mask, whatever the host (Deno) set.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) sigaction(s, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  prctl(PR_SET_PDEATHSIG, SIGKILL);

  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = open(c.out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err = open(c.err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
    child_fail(c, kStdio);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(c, kNoNewPrivs);

  if (c.root) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) != 0)
      child_fail(c, kUnshare);
    if (!write_proc("/proc/self/setgroups", "deny") ||
        !write_proc("/proc/self/uid_map", c.uid_map) ||
        !write_proc("/proc/self/gid_map", c.gid_map))
      child_fail(c, kIdMap);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        mount("tmpfs", c.root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") != 0)
      child_fail(c, kMount);
    for (const std::string &d : c.dirs)
      if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) child_fail(c, kMount);
    for (const std::string &f : c.files) {
      int fd = open(f.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) child_fail(c, kMount);
      close(fd);
    }
    for (const auto &[at, target] : c.links)
      if (symlink(target.c_str(), at.c_str()) != 0 && errno != EEXIST) child_fail(c, kMount);
    for (const auto &[src, dst] : c.binds)
      if (mount(src.c_str(), dst.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
        child_fail(c, kMount);
    for (size_t i = 0; i < c.binds.size(); ++i)
      if (c.remount[i] && mount(nullptr, c.binds[i].second.c_str(), nullptr,
                                MS_BIND | MS_REMOUNT | MS_RDONLY | c.remount[i], nullptr) != 0)
        child_fail(c, kMount);
    if (mount(nullptr, c.root, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
              nullptr) != 0)
      child_fail(c, kMount);
    if (chroot(c.root) != 0) child_fail(c, kChroot);
  }
  if (c.ruleset >= 0 && syscall(SYS_landlock_restrict_self, c.ruleset, 0) != 0)
    child_fail(c, kLandlock);
  if (chdir(c.cwd) != 0) child_fail(c, kChdir);
  // No descriptor of the host reaches the compiler (the report pipe closes on exec).
  bool closed = false;
#ifdef SYS_close_range
  unsigned keep = static_cast<unsigned>(c.report);
  closed = (keep == 3 || syscall(SYS_close_range, 3u, keep - 1, 0u) == 0) &&
           syscall(SYS_close_range, keep + 1, ~0u, 0u) == 0;
#endif
  for (int fd = 3; !closed && fd < 65536; ++fd)
    if (fd != c.report) close(fd);
  execve(c.path, c.argv.data(), c.envp.data());
  child_fail(c, kExec);
}

const char *step_name(int step) {
  switch (step) {
  case kStdio: return "open its output files";
  case kNoNewPrivs: return "set no_new_privs";
  case kLandlock: return "apply the Landlock ruleset";
  case kUnshare: return "create a user and mount namespace";
  case kIdMap: return "map its user in the namespace";
  case kMount: return "build its root folder";
  case kChroot: return "enter its root folder";
  case kChdir: return "enter the build folder";
  default: return "start";
  }
}

} // namespace

const char *confinement_name(Confinement how) {
  switch (how) {
  case Confinement::LandlockNamespaces: return "landlock+namespaces";
  case Confinement::Landlock: return "landlock";
  case Confinement::Bubblewrap: return "bubblewrap";
  case Confinement::Namespaces: return "namespaces";
  default: return "none";
  }
}

bool confinement_from_name(const std::string &name, Confinement *out) {
  for (Confinement c : {Confinement::LandlockNamespaces, Confinement::Landlock,
                        Confinement::Bubblewrap, Confinement::Namespaces, Confinement::None})
    if (name == confinement_name(c)) return *out = c, true;
  return false;
}

int landlock_abi() {
  long v = syscall(SYS_landlock_create_ruleset, nullptr, 0, kLlVersion);
  return v > 0 ? static_cast<int>(v) : 0;
}

std::vector<Confinement> offered_confinements(const std::string &bwrap) {
  std::vector<Confinement> out;
  std::string n;
  bool userns = read_file("/proc/sys/user/max_user_namespaces", &n) && std::atol(n.c_str()) > 0;
  bool landlock = landlock_abi() >= 1;
  if (landlock && userns) out.push_back(Confinement::LandlockNamespaces);
  if (landlock) out.push_back(Confinement::Landlock);
  if (!bwrap.empty()) out.push_back(Confinement::Bubblewrap);
  if (userns) out.push_back(Confinement::Namespaces);
  out.push_back(Confinement::None);
  return out;
}

ProcessResult run_confined(Confinement how, const ConfinePlan &plan, const std::string &bwrap,
                           const std::vector<std::string> &argv, const std::string &cwd,
                           const std::string &stdout_path, const std::string &stderr_path,
                           int timeout_ms) {
  ProcessResult r;
  Child c;
  c.how = how;
  std::vector<std::string> args = argv;
  std::string tmpdir = "TMPDIR=" + plan.write;
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LANG=C", tmpdir};
  std::string root_dir;
  RootPlan rp;
  bool new_root = how == Confinement::Namespaces || how == Confinement::LandlockNamespaces;
  if (how == Confinement::Bubblewrap || new_root) rp = root_plan(plan);
  if (how == Confinement::Bubblewrap) {
    std::vector<std::string> b = {bwrap, "--unshare-all", "--die-with-parent", "--new-session"};
    for (const Bind &m : rp.binds) b.insert(b.end(), {m.writable ? "--bind" : "--ro-bind", m.src, m.src});
    for (const auto &[at, target] : rp.symlinks) b.insert(b.end(), {"--symlink", target, at});
    b.insert(b.end(), {"--chdir", cwd, "--"});
    args.insert(args.begin(), b.begin(), b.end());
  }
  if (how == Confinement::Landlock || how == Confinement::LandlockNamespaces) {
    c.ruleset = landlock_ruleset(plan, landlock_abi(), &r.error);
    if (c.ruleset < 0) return r;
  }
  if (new_root) {
    // An empty folder to mount the new root on (in the child's namespace only).
    root_dir = plan.write + ".root";
    if (mkdir(root_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      r.error = "cannot create " + root_dir + ": " + std::strerror(errno);
      if (c.ruleset >= 0) close(c.ruleset);
      return r;
    }
    c.root = root_dir.c_str();
    c.uid_map = std::to_string(geteuid()) + " " + std::to_string(geteuid()) + " 1";
    c.gid_map = std::to_string(getegid()) + " " + std::to_string(getegid()) + " 1";
    auto add_dirs = [&](const std::string &path) {
      for (size_t i = 1; i <= path.size(); ++i)
        if (i == path.size() || path[i] == '/')
          if (std::find(c.dirs.begin(), c.dirs.end(), root_dir + path.substr(0, i)) == c.dirs.end())
            c.dirs.push_back(root_dir + path.substr(0, i));
    };
    for (const Bind &m : rp.binds) {
      std::string parent = m.src.substr(0, m.src.rfind('/'));
      if (!parent.empty()) add_dirs(parent);
      if (m.dir) add_dirs(m.src);
      else c.files.push_back(root_dir + m.src);
      c.binds.emplace_back(m.src, root_dir + m.src);
      c.remount.push_back(m.writable ? 0 : m.lock_flags);
    }
    for (const auto &[at, target] : rp.symlinks) {
      std::string parent = at.substr(0, at.rfind('/'));
      if (!parent.empty()) add_dirs(parent);
      c.links.emplace_back(root_dir + at, target);
    }
  }
  for (const std::string &a : args) c.argv.push_back(const_cast<char *>(a.c_str()));
  c.argv.push_back(nullptr);
  for (const std::string &e : env) c.envp.push_back(const_cast<char *>(e.c_str()));
  c.envp.push_back(nullptr);
  c.path = args[0].c_str();
  c.cwd = cwd.c_str();
  c.out = stdout_path.c_str();
  c.err = stderr_path.c_str();

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    r.error = std::string("pipe: ") + std::strerror(errno);
    if (c.ruleset >= 0) close(c.ruleset);
    return r;
  }
  c.report = pipefd[1];
  pid_t pid = fork();
  if (pid == 0) child_main(c);
  int fork_errno = errno;
  close(pipefd[1]);
  if (c.ruleset >= 0) close(c.ruleset);
  if (pid < 0) {
    close(pipefd[0]);
    r.error = std::string("cannot start the compiler: fork: ") + std::strerror(fork_errno);
    return r;
  }
  int msg[2] = {0, 0};
  ssize_t got;
  do got = read(pipefd[0], msg, sizeof msg);
  while (got < 0 && errno == EINTR);
  close(pipefd[0]);
  int status = 0;
  if (got == static_cast<ssize_t>(sizeof msg)) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!root_dir.empty()) rmdir(root_dir.c_str());
    r.error = std::string("cannot run ") + argv[0] + " confined (" + confinement_name(how) +
              "): could not " + step_name(msg[0]) + ": " + std::strerror(msg[1]);
    return r;
  }
  r.started = true;
  long waited_us = 0, step_us = 500;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      break;
    }
    if (w < 0 && errno != EINTR) {
      r.error = "lost track of the compiler process";
      break;
    }
    if (timeout_ms > 0 && waited_us / 1000 > timeout_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r.timed_out = true;
      break;
    }
    timespec ts{0, step_us * 1000};
    nanosleep(&ts, nullptr);
    waited_us += step_us;
    if (step_us < 10000) step_us *= 2;
  }
  if (!root_dir.empty()) rmdir(root_dir.c_str());
  return r;
}

} // namespace mbsim
