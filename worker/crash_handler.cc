#include "worker/crash_handler.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <backward.hpp>
#include <csignal>
#include <cstdint>
#include <cstdio>

#include "common/fd.h"
#include "worker/job_group.h"

namespace kiln::worker {
namespace {

constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
// Symbolizing with libdw runs on this stack: give it room.
constexpr std::size_t kAltStackSize = 512 << 10;

// A fixed buffer filled without allocation, for the first line of the report.
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

void on_crash(int sig, siginfo_t* info, void* context) {
  Line line;
  line.add("kiln-worker ");
  line.add_number(static_cast<uint64_t>(::getpid()), 10);
  line.add(" crashed: ");
  line.add(crash_signal_name(sig));
  if (sig != SIGABRT) {
    line.add(" (address 0x");
    line.add_number(reinterpret_cast<uintptr_t>(info->si_addr), 16);
    line.add(")");
  }
  line.add("\n");
  line.write_to(STDERR_FILENO);
  kill_job_groups();

  // Best effort from here on (see the header).
  backward::StackTrace trace;
  void* pc = nullptr;
#if defined(__x86_64__)
  pc = reinterpret_cast<void*>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  pc = reinterpret_cast<void*>(static_cast<ucontext_t*>(context)->uc_mcontext.pc);
#endif
  if (pc != nullptr) {
    trace.load_from(pc, 32, context, info->si_addr);
  } else {
    trace.load_here(32, context, info->si_addr);
  }
  backward::Printer printer;
  printer.address = true;
  printer.color_mode = backward::ColorMode::never;
  printer.print(trace, stderr);
  std::fflush(stderr);

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

void install_crash_handler() {
  install_alternate_stack();
  struct sigaction action = {};
  action.sa_sigaction = on_crash;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  for (int sig : kCrashSignals) {
    if (::sigaction(sig, &action, nullptr) != 0) fatal_errno("sigaction");
  }
}

}  // namespace kiln::worker
