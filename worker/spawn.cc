#include "worker/spawn.h"

#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>

#include "common/exit_codes.h"
#include "common/fd.h"

namespace kiln::worker {

ExecStrings exec_candidates(const std::string& file, const std::vector<std::string>& env) {
  std::optional<std::string_view> path;
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = std::string_view(e).substr(5);
  }
  return ExecStrings(path_candidates(file, path));
}

int exec_first(char* const candidates[], char* const argv[], char* const envp[]) {
  int error = ENOENT;
  for (char* const* candidate = candidates; *candidate != nullptr; ++candidate) {
    ::execve(*candidate, argv, envp);
    switch (errno) {
      case EACCES:
        error = EACCES;
        break;
      case ENOENT:
      case ENOTDIR:
      case ESTALE:
      case ENODEV:
      case ETIMEDOUT:
        break;
      default:
        return errno;
    }
  }
  return error;
}

namespace {

[[noreturn]] void child_fail(int report_fd, ChildFailure::Stage stage, int error) {
  const ChildFailure f{stage, error};
  (void)!::write(report_fd, &f, sizeof f);
  ::_exit(exit_code::kNotFound);  // 127, as a shell whose exec failed
}

}  // namespace

[[noreturn]] void exec_child(const ChildSetup& s) {
  ::setpgid(0, 0);
  // Dies with the worker; if the worker died before prctl, nothing will ever signal us, and no
  // one is left to read a report.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != s.worker) ::_exit(exit_code::kNotFound);
  int highest = 2;
  for (const FdMove& m : s.fds) {
    if (::dup2(m.source, m.target) < 0) child_fail(s.report_fd, ChildFailure::kFds, errno);
    highest = std::max(highest, m.target);
  }
  // The worker ignores SIGINT and SIGPIPE and blocks SIGTERM: the program gets the defaults.
  if (s.ignored_signals != nullptr) {
    reset_signals_for_exec(*s.ignored_signals);
  } else {
    reset_signals_for_exec();
  }
  if (s.own_steps != nullptr) s.own_steps(s.context);
  if (s.cwd != nullptr && ::chdir(s.cwd) != 0) child_fail(s.report_fd, ChildFailure::kChdir, errno);
  // A clean fd table: the given fds only (the report pipe is close-on-exec like everything else).
  ::syscall(SYS_close_range, static_cast<unsigned>(highest) + 1, ~0U, CLOSE_RANGE_CLOEXEC);
  child_fail(s.report_fd, ChildFailure::kExec, exec_first(s.candidates, s.argv, s.envp));
}

std::optional<ChildFailure> read_child_failure(int report_fd, pid_t pid) {
  ChildFailure failure;
  ssize_t got;
  do {
    got = ::read(report_fd, &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);
  if (got != sizeof failure) return std::nullopt;
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  return failure;
}

}  // namespace kiln::worker
