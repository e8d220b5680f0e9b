// Small file-descriptor and process helpers shared by the binaries and the tests.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace kiln {

// Prints "kiln: <what>: <strerror(errno)>" to stderr and exits with exit_code::kInternal. For
// system calls that cannot fail unless the system is broken (ninja's Fatal).
[[noreturn]] void fatal_errno(const char* what);

// Owns one file descriptor; closes it on destruction. -1 means none.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Sets or clears FD_CLOEXEC. Returns false (errno set) if fd is not open.
bool set_cloexec(int fd, bool on = true);

// Marks every fd >= 3 close-on-exec (close_range with CLOSE_RANGE_CLOEXEC, kernel >= 5.11; a
// /proc/self/fd walk otherwise), so nothing a process inherited leaks into its children.
void cloexec_from(int first_fd);

// Closes every fd >= 3 except those in keep.
void close_fds_except(const std::vector<int>& keep);

// The open fds of a process, from /proc/PID/fd (empty if it cannot be read).
std::vector<int> open_fds(pid_t pid);

// A pipe whose both ends are close-on-exec: {read end, write end}. make_pipe ends the process
// if the system refuses (fatal_errno); try_make_pipe returns nullopt with errno set.
std::pair<UniqueFd, UniqueFd> make_pipe();
std::optional<std::pair<UniqueFd, UniqueFd>> try_make_pipe();

// The whole content of a small file read with read(2), or nullopt if it cannot be opened or read.
// For /proc files: a process that exits while it is being read makes read() fail with ESRCH,
// which std::ifstream turns into an exception from inside its iterators; this never throws.
std::optional<std::string> read_small_file(const std::string& path);

// A figure in KiB from a "Key:   123 kB" line of /proc/PID/<file> (status, smaps_rollup), or 0
// if the process or the line is gone.
unsigned long proc_kb(pid_t pid, const char* file, std::string_view key);
// The resident set size of a process in KiB (VmRSS), or 0 if it is gone.
unsigned long rss_kb(pid_t pid);

// The children of a process (of its main thread, which is every child of a single-threaded
// forker and every orphan handed to a subreaper), from /proc/PID/task/PID/children.
std::vector<pid_t> child_pids(pid_t pid);

// Kills (SIGKILL, with the process group each one leads) and reaps every child of this process
// not in `spare`, in rounds, since killing one can hand us its children in turn. For a
// subreaper: what was left behind. Returns how many it killed.
std::size_t kill_children_except(const std::vector<pid_t>& spare);

// The path of `name` in the directory of this process's own binary (/proc/self/exe): how each
// binary finds its siblings (kiln-worker, kiln-supervisor) by default.
std::string beside_self(std::string_view name);

// Where execvp looks for `file`, in order: `file` itself when it holds a '/', else `file` in each
// directory of `path` (a PATH value; nullopt, PATH unset: /usr/local/bin:/usr/bin:/bin). An empty
// directory, first, inner or last, is the current one, as POSIX says ("" is it alone).
std::vector<std::string> path_candidates(std::string_view file,
                                         std::optional<std::string_view> path);

// The first of `candidates` that is an executable regular file, or nullopt. A candidate without
// a '/' is looked up in $PATH (path_candidates).
std::optional<std::string> first_executable(const std::vector<std::string>& candidates);

// Every signal to its default action and an empty signal mask: what a process about to exec
// another program owes it (exec keeps ignored signals and the mask). System calls only: safe
// between fork (or vfork) and exec.
void reset_signals_for_exec();

// The signals this process ignores: of its dispositions, the only ones exec keeps (a handler
// becomes the default). One system call per signal: for a process that forks often and sets no
// disposition after its start, found once, so that each child resets only these.
std::vector<int> ignored_signals();
// reset_signals_for_exec() for a process whose only non-default dispositions that survive exec
// are `ignored` (from ignored_signals()): those to the default, and an empty signal mask.
void reset_signals_for_exec(const std::vector<int>& ignored);

// "SIGSEGV" for SIGSEGV; "signal 42" for one without a name.
std::string signal_name(int sig);

// Opens a log file for appending, the safe way: a log beside a socket may sit in a directory
// others can write, so a symbolic link there (to a file of ours they want overwritten, or read)
// is refused, as is anything but a regular file (a FIFO would block us), and the file is made
// ours alone (0600). The fd is blocking and close-on-exec.
Expected<UniqueFd> open_log_file(const std::string& path);

// The most fds one message on a Unix socket carries here (SCM_RIGHTS): a zygote's `fork` has 5.
inline constexpr std::size_t kMaxPassedFds = 8;
// Sends `bytes` on the Unix socket `sock` with `fds` (at most kMaxPassedFds; any below 0 is left
// out: none to pass) attached to its first byte, retrying on EINTR, never raising SIGPIPE. True
// when all of `bytes` went (a few bytes: all or nothing); false with errno set otherwise.
bool send_with_fds(int sock, std::string_view bytes, const std::vector<int>& fds);
// Receives at most `size` bytes from the Unix socket `sock` into `buf`, retrying on EINTR; the fds
// that came with them (close-on-exec, at most kMaxPassedFds) are appended to `fds`, owned. Returns
// what recvmsg does: the count of bytes, 0 at end of input, -1 with errno set.
ssize_t receive_with_fds(int sock, char* buf, std::size_t size, std::vector<UniqueFd>& fds);

}  // namespace kiln
