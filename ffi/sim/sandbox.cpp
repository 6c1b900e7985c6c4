// The runner's seccomp-bpf sandbox (sandbox.h).
#include "sandbox.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

namespace mbsim {

namespace {

#if defined(__x86_64__)
constexpr unsigned kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned kArch = AUDIT_ARCH_AARCH64;
#else
#error "sandbox: add this machine"
#endif

// What the runner and kernel code need once kernels run. Everything else
// traps. (Threads are all started before; kernels are loaded before.)
const long kAllowed[] = {
    SYS_read, SYS_write, SYS_close, SYS_fstat, SYS_lseek,
    SYS_mmap, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_mremap, SYS_brk,
    SYS_futex, SYS_sched_yield, SYS_nanosleep, SYS_clock_nanosleep, SYS_clock_gettime,
    SYS_gettimeofday, SYS_getpid, SYS_gettid, SYS_getrandom,
    SYS_rt_sigreturn, SYS_rt_sigprocmask, SYS_sigaltstack, SYS_restart_syscall,
    SYS_ppoll, SYS_recvmsg, SYS_sendmsg, SYS_recvfrom, SYS_sendto,
    SYS_exit, SYS_exit_group,
#ifdef SYS_poll
    SYS_poll,
#endif
#ifdef SYS_membarrier
    SYS_membarrier,
#endif
};

// What a worker thread needs to run kernels and park between jobs: no file
// descriptor in any form (mmap only anonymous, checked below).
const long kWorkerAllowed[] = {
    SYS_munmap, SYS_mprotect, SYS_madvise, SYS_mremap, SYS_brk,
    SYS_futex, SYS_sched_yield, SYS_nanosleep, SYS_clock_nanosleep, SYS_clock_gettime,
    SYS_gettimeofday, SYS_getpid, SYS_gettid,
    SYS_rt_sigreturn, SYS_rt_sigprocmask, SYS_restart_syscall,
    SYS_exit, SYS_exit_group,
};

// Names for the report of a forbidden call (the ones a kernel would try).
struct Named {
  long nr;
  const char *name;
};
const Named kNames[] = {
#ifdef SYS_open
    {SYS_open, "open"},
#endif
#ifdef SYS_creat
    {SYS_creat, "creat"},
#endif
#ifdef SYS_fork
    {SYS_fork, "fork"},
#endif
#ifdef SYS_vfork
    {SYS_vfork, "vfork"},
#endif
#ifdef SYS_unlink
    {SYS_unlink, "unlink"},
#endif
#ifdef SYS_stat
    {SYS_stat, "stat"},
#endif
#ifdef SYS_renameat
    {SYS_renameat, "renameat"},
#endif
    {SYS_openat, "openat"},       {SYS_openat2, "openat2"},     {SYS_execve, "execve"},
    {SYS_execveat, "execveat"},   {SYS_clone, "clone"},         {SYS_clone3, "clone3"},
    {SYS_socket, "socket"},       {SYS_connect, "connect"},     {SYS_bind, "bind"},
    {SYS_listen, "listen"},       {SYS_accept4, "accept4"},     {SYS_kill, "kill"},
    {SYS_tgkill, "tgkill"},       {SYS_ptrace, "ptrace"},       {SYS_unlinkat, "unlinkat"},
    {SYS_mkdirat, "mkdirat"},     {SYS_newfstatat, "newfstatat"},
    {SYS_statx, "statx"},         {SYS_getdents64, "getdents64"}, {SYS_rt_sigaction, "rt_sigaction"},
    {SYS_ioctl, "ioctl"},         {SYS_prctl, "prctl"},         {SYS_seccomp, "seccomp"},
    {SYS_memfd_create, "memfd_create"}, {SYS_dup3, "dup3"},     {SYS_fcntl, "fcntl"},
    {SYS_chdir, "chdir"},         {SYS_readlinkat, "readlinkat"}, {SYS_faccessat, "faccessat"},
    {SYS_process_vm_writev, "process_vm_writev"}, {SYS_setsid, "setsid"},
    {SYS_write, "write"},         {SYS_writev, "writev"},       {SYS_pwrite64, "pwrite64"},
    {SYS_pwritev, "pwritev"},     {SYS_pwritev2, "pwritev2"},   {SYS_sendmsg, "sendmsg"},
    {SYS_sendto, "sendto"},       {SYS_sendmmsg, "sendmmsg"},   {SYS_read, "read"},
    {SYS_readv, "readv"},         {SYS_recvmsg, "recvmsg"},     {SYS_recvfrom, "recvfrom"},
    {SYS_close, "close"},         {SYS_dup, "dup"},             {SYS_mmap, "mmap"},
    {SYS_splice, "splice"},       {SYS_vmsplice, "vmsplice"},   {SYS_tee, "tee"},
    {SYS_sendfile, "sendfile"},   {SYS_copy_file_range, "copy_file_range"},
    {SYS_ftruncate, "ftruncate"}, {SYS_fallocate, "fallocate"}, {SYS_io_uring_setup, "io_uring_setup"},
    {SYS_close_range, "close_range"}, {SYS_pidfd_getfd, "pidfd_getfd"}, {SYS_sigaltstack, "sigaltstack"},
    {SYS_getrandom, "getrandom"}, {SYS_ppoll, "ppoll"},         {SYS_getppid, "getppid"},
#ifdef SYS_dup2
    {SYS_dup2, "dup2"},
#endif
#ifdef SYS_poll
    {SYS_poll, "poll"},
#endif
};

class Filter {
public:
  void stmt(unsigned short code, unsigned k) { f_.push_back(BPF_STMT(code, k)); }
  void jump(unsigned short code, unsigned k, unsigned char jt, unsigned char jf) {
    f_.push_back(BPF_JUMP(code, k, jt, jf));
  }
  // Another architecture's calling convention (e.g. 32-bit) is refused;
  // leaves the system call number loaded.
  void check_arch() {
    stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
    jump(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0);
    stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    load_nr();
#if defined(__x86_64__)
    jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1); // the x32 ABI
    stmt(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
#endif
  }
  void load_nr() { stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)); }
  // The low 32 bits of argument i (both machines are little-endian).
  void load_arg(int i) { stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args) + 8 * i); }
  void allow(const long *nrs, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nrs[i]), 0, 1);
      stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
  }
  bool install(unsigned flags, std::string *err) {
    sock_fprog prog{static_cast<unsigned short>(f_.size()), f_.data()};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) == 0) return true;
    *err = std::string("seccomp(SECCOMP_SET_MODE_FILTER) failed: ") + std::strerror(errno);
    return false;
  }

private:
  std::vector<sock_filter> f_;
};

} // namespace

const char *syscall_name(long nr) {
  for (const Named &n : kNames)
    if (n.nr == nr) return n.name;
  return nullptr;
}

bool enter_sandbox(std::string *err) {
  Filter f;
  f.check_arch();
  f.allow(kAllowed, sizeof kAllowed / sizeof *kAllowed);
  // Worker threads stack their own filter (seccomp(SET_MODE_FILTER, 0)):
  // a filter only ever takes rights away.
  f.jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_seccomp, 0, 6);
  f.load_arg(0);
  f.jump(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_SET_MODE_FILTER, 0, 2);
  f.load_arg(1);
  f.jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0);
  f.stmt(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
  f.stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  f.stmt(BPF_RET | BPF_K, SECCOMP_RET_TRAP);

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    *err = std::string("prctl(PR_SET_NO_NEW_PRIVS) failed: ") + std::strerror(errno);
    return false;
  }
  // TSYNC: the filter covers every thread of the runner, not just this one
  // (and sets no_new_privs on them, which restrict_thread relies on).
  return f.install(SECCOMP_FILTER_FLAG_TSYNC, err);
}

bool restrict_thread(std::string *err) {
  Filter f;
  f.check_arch();
  f.allow(kWorkerAllowed, sizeof kWorkerAllowed / sizeof *kWorkerAllowed);
  // mmap: anonymous memory only (a descriptor's pages could be the
  // control page or another channel).
  f.jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 3);
  f.load_arg(3);
  f.jump(BPF_JMP | BPF_JSET | BPF_K, MAP_ANONYMOUS, 0, 1);
  f.stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  f.stmt(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
  return f.install(0, err);
}

} // namespace mbsim
