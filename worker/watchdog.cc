#include "worker/watchdog.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "common/exit_codes.h"
#include "worker/crash_handler.h"
#include "worker/job_group.h"

namespace kiln::worker {

bool claim_the_end() {
  static std::atomic<bool> claimed{false};
  return !claimed.exchange(true);
}

void finish_or_wait() {
  if (!claim_the_end()) {
    for (;;) ::pause();  // the watchdog is ending the process: it _exits
  }
}

void kill_job_groups() {
  const pid_t group = g_job_group.load();
  if (group > 0) ::kill(-group, SIGKILL);
  for (const std::atomic<pid_t>& tool : g_tool_groups) {
    const pid_t g = tool.load();
    if (g > 0) ::kill(-g, SIGKILL);
  }
}

void remove_job_object(int wait_ms) {
  if (!g_job_object_set.load()) return;
  // The command writes the object itself: it must be gone before the file is, or it could
  // create it again. Killed, it is gone at once; ESRCH: reaped already.
  const pid_t group = g_job_group.load();
  if (group > 0) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, group, 0));
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      (void)::poll(&p, 1, wait_ms);
      ::close(pidfd);
    }
  }
  ::unlink(g_job_object);
}

Watchdog::Watchdog(pid_t parent, int link_write_fd)
    : parent_(parent), link_write_fd_(link_write_fd) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  if (::pthread_sigmask(SIG_BLOCK, &term, nullptr) != 0) fatal_errno("pthread_sigmask");
  signalfd_.reset(::signalfd(-1, &term, SFD_CLOEXEC));
  if (!signalfd_) fatal_errno("signalfd");
  // pidfd_open (Linux >= 5.3; its fds are always close-on-exec) makes parent death an event;
  // without it, poll getppid().
  pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, parent, 0)));
}

void Watchdog::start() { std::thread(&Watchdog::watch, this).detach(); }

void Watchdog::watch() {
  ::prctl(PR_SET_NAME, "kiln-watchdog");  // for ps -L, gdb and the tests that wait for it
  install_alternate_stack();
  pollfd fds[2] = {{signalfd_.get(), POLLIN, 0}, {pidfd_.get(), POLLIN, 0}};
  const nfds_t nfds = pidfd_ ? 2 : 1;
  const int timeout_ms = pidfd_ ? -1 : 100;
  for (;;) {
    const int n = ::poll(fds, nfds, timeout_ms);
    if (n < 0 && errno != EINTR) break;
    bool parent_gone = (nfds == 2 && (fds[1].revents & POLLIN) != 0) || ::getppid() != parent_;
    bool terminate = false;
    if ((fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo info;
      if (::read(signalfd_.get(), &info, sizeof info) == sizeof info) {
        terminate = !ignore_sigterm_.load();
      }
    }
    if (parent_gone || terminate) break;
  }
  // First the link goes quiet: a job that the kill below ends must not be reported as if it had
  // ended by itself (an exec command's SIGKILL would read as an `ok` result with exit_code -1,
  // which the supervisor would pass on for a job it meant to run again). What the main thread
  // writes from now on goes to /dev/null; what it wrote before was the truth.
  if (const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC); devnull >= 0) {
    ::dup3(devnull, link_write_fd_, O_CLOEXEC);
    ::close(devnull);
  }
  kill_job_groups();
  remove_job_object(1000);
  // The main thread is exiting already: its exit handlers must not race this thread's cleanup
  // (under LeakSanitizer they deadlocked: its exit-time check held the allocator while this thread
  // killed the tracer it had started). The job's groups are dead; the process ends with main.
  if (!claim_the_end()) {
    for (;;) ::pause();
  }
  // Then what left the group (setsid, a daemonizing compiler server): the worker is their
  // subreaper, so once their parents die they are its children, and kill_children_except goes
  // round until none is left. Without this, a SIGKILLed supervisor left them running under init.
  kill_children_except({});
  ::_exit(exit_code::kSignalBase + SIGTERM);
}

}  // namespace kiln::worker
