#include "worker/crash_handler.h"

#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>
#include <unwind.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/crash_report.h"
#include "common/fd.h"
#include "worker/job_group.h"

namespace kiln::worker {
namespace {

constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
// The handler, the unwinder and its report run on this stack; symbolizing runs in another process.
constexpr std::size_t kAltStackSize = 128 << 10;
constexpr int kMaxFrames = 64;
// Set by the selftest action `crash-report-hangs`: the handler then stops after the report's
// first line, as one stuck in malloc would (see crashed_stack).
volatile sig_atomic_t g_report_hangs = 0;

// kiln-symbolize beside this binary, found before any crash: the handler cannot look for it.
// Written once by install_crash_handler, before the handler can run; empty if it is not there.
char g_symbolizer[PATH_MAX];
// Its stdout is our stderr. Made with the path: adding an action allocates.
posix_spawn_file_actions_t g_stdout_to_stderr;

// A fixed buffer filled without allocation: the report's first line, the symbolizer's arguments.
class Line {
 public:
  void add(const char* s) {
    while (*s != '\0' && len_ < sizeof buf_) buf_[len_++] = *s++;
  }
  void add_number(uint64_t v, unsigned base) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = "0123456789abcdef"[v % base];
      v /= base;
    } while (v != 0);
    while (n > 0 && len_ < sizeof buf_) buf_[len_++] = digits[--n];
  }
  void write_to(int fd) const { (void)!::write(fd, buf_, len_); }
  // Ends the text with a NUL (the last byte is given up if it is full), for c_str().
  void terminate() { buf_[len_ < sizeof buf_ ? len_ : sizeof buf_ - 1] = '\0'; }
  char* c_str() { return buf_; }

 private:
  char buf_[160];
  std::size_t len_ = 0;
};

const char* crash_signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGABRT:
      return "SIGABRT";
  }
  return "signal";
}

// The addresses of the crashed thread's stack, gathered with libgcc's unwinder. In a static binary
// its first use sorts the binary's frame table (malloc): running it at start to have that done
// would cost every idle worker some 140 KiB. So a crash inside malloc can still hang here, after
// the report's first line, as it could when backward-cpp unwound and symbolized in the handler.
struct Frames {
  uintptr_t pc[kMaxFrames];
  int count = 0;
  int first = 0;  // the frame that crashed: those before it are the handler's own
};

_Unwind_Reason_Code add_frame(_Unwind_Context* context, void* arg) {
  auto* frames = static_cast<Frames*>(arg);
  int before_insn = 0;
  uintptr_t ip = _Unwind_GetIPInfo(context, &before_insn);
  // A return address names the call's next instruction: step back into the call.
  if (before_insn == 0 && ip != 0) --ip;
  frames->pc[frames->count++] = ip;
  return frames->count == kMaxFrames ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// The stack, its `first` the frame that faulted (`pc`); the first frame if `pc` is not among them.
Frames crashed_stack(uintptr_t pc) {
  Frames frames;
  _Unwind_Backtrace(add_frame, &frames);
  while (frames.first < frames.count && frames.pc[frames.first] != pc) ++frames.first;
  if (frames.first == frames.count) frames.first = 0;
  return frames;
}

// Waits for kiln-symbolize (a pidfd says when it ends) up to its deadline, then SIGKILLs it;
// reaps it either way. True if it named the frames (exit 0).
bool symbolizer_succeeded(pid_t child) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
  if (pidfd >= 0) {
    pollfd ended{pidfd, POLLIN, 0};
    int ready = 0;
    // A symbolizer that hangs (on a damaged binary, say) must not keep the worker, and so its
    // job, from ending.
    while ((ready = ::poll(&ended, 1, crash_report::kSymbolizeDeadlineMs)) < 0 && errno == EINTR) {
    }
    ::close(pidfd);
    if (ready == 0) ::kill(child, SIGKILL);
  }
  int status = -1;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Runs kiln-symbolize with this pid and the frames, its output on our stderr, and waits for it.
// posix_spawn (glibc's: clone with CLONE_VM|CLONE_VFORK on a stack of its own, no malloc) with
// file actions made before any crash; fork is unsafe here (its atfork handlers take malloc's
// locks, which the crash may hold), and vfork on the alternate stack broke ASan's interceptor.
// Prints the bare addresses when it cannot run, fails, or overstays its deadline.
void report_stack(const Frames& frames) {
  Line pid;
  pid.add_number(static_cast<uint64_t>(::getpid()), 10);
  pid.terminate();
  const int count = frames.count - frames.first;
  Line addresses[kMaxFrames];
  char* argv[kMaxFrames + 3] = {g_symbolizer, pid.c_str()};
  for (int i = 0; i < count; ++i) {
    addresses[i].add_number(frames.pc[frames.first + i], 16);
    addresses[i].terminate();
    argv[i + 2] = addresses[i].c_str();
  }
  argv[count + 2] = nullptr;
  pid_t child = -1;
  if (g_symbolizer[0] != '\0' &&
      ::posix_spawn(&child, g_symbolizer, &g_stdout_to_stderr, nullptr, argv, environ) == 0 &&
      symbolizer_succeeded(child)) {
    return;
  }
  Line header;
  header.add("Stack trace, addresses only (most recent call first):\n");
  header.write_to(STDERR_FILENO);
  for (int i = 0; i < count; ++i) {
    Line line;
    line.add("#");
    line.add_number(static_cast<uint64_t>(i), 10);
    line.add(" 0x");
    line.add(addresses[i].c_str());
    line.add("\n");
    line.write_to(STDERR_FILENO);
  }
}

uintptr_t faulting_pc(void* context) {
#if defined(__x86_64__)
  return static_cast<uintptr_t>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(static_cast<ucontext_t*>(context)->uc_mcontext.pc);
#else
  (void)context;
  return 0;
#endif
}

void on_crash(int sig, siginfo_t* info, void* context) {
  Line line;
  line.add(crash_report::kBeforePid);
  line.add_number(static_cast<uint64_t>(::getpid()), 10);
  line.add(crash_report::kAfterPid);
  line.add(crash_signal_name(sig));
  if (sig != SIGABRT) {
    line.add(" (address 0x");
    line.add_number(reinterpret_cast<uintptr_t>(info->si_addr), 16);
    line.add(")");
  }
  line.add("\n");
  line.write_to(STDERR_FILENO);
  while (g_report_hangs != 0) ::pause();
  kill_job_groups();
  report_stack(crashed_stack(faulting_pc(context)));

  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);
}

}  // namespace

void install_alternate_stack() {
  void* mem =
      ::mmap(nullptr, kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) fatal_errno("mmap (alternate signal stack)");
  stack_t stack = {};
  stack.ss_sp = mem;
  stack.ss_size = kAltStackSize;
  if (::sigaltstack(&stack, nullptr) != 0) fatal_errno("sigaltstack");
  // The stack lives as long as the thread, which is as long as the process.
}

void hang_crash_reports() { g_report_hangs = 1; }

void install_crash_handler() {
  install_alternate_stack();
  const std::string symbolizer = beside_self("kiln-symbolize");
  if (symbolizer.size() < sizeof g_symbolizer && ::access(symbolizer.c_str(), X_OK) == 0) {
    std::memcpy(g_symbolizer, symbolizer.c_str(), symbolizer.size() + 1);
  }
  if (::posix_spawn_file_actions_init(&g_stdout_to_stderr) != 0 ||
      ::posix_spawn_file_actions_adddup2(&g_stdout_to_stderr, STDERR_FILENO, STDOUT_FILENO) != 0) {
    g_symbolizer[0] = '\0';
  }
  struct sigaction action = {};
  action.sa_sigaction = on_crash;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  for (int sig : kCrashSignals) {
    if (::sigaction(sig, &action, nullptr) != 0) fatal_errno("sigaction");
  }
}

}  // namespace kiln::worker
