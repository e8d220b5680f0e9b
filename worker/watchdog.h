// The worker's watchdog thread (docs/design.md start-up step 4): the one place that ends the worker
// from outside events. It waits on a pidfd of the parent and on a signalfd for SIGTERM, which is
// blocked in every thread (PR_SET_PDEATHSIG delivers SIGTERM too). Either way it first kills the
// running command's process group and every other descendant the worker has (it is their
// subreaper), so nothing a job started outlives the worker, then exits at once.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <thread>

#include "common/fd.h"

namespace kiln::worker {

// Exactly one of the watchdog and the main thread ends the process: the first to call this gets
// true. The main thread calls finish_or_wait() before it returns from main: if the watchdog is
// ending the process already, it waits for that instead of running exit handlers beside it.
bool claim_the_end();
void finish_or_wait();

class Watchdog {
 public:
  // Blocks SIGTERM in the calling thread (and so in every thread created after it) and opens
  // what the watchdog waits on: from here on, SIGTERM and the parent's end are kept until its
  // thread reads them. Call before any other thread exists. `link_write_fd` is silenced before
  // the worker's jobs are killed (see watch()).
  Watchdog(pid_t parent, int link_write_fd);
  ~Watchdog() = delete;  // lives until the process ends; the thread is detached
  // Starts the thread, once: before anything it may have to stop (a tool, a job) begins.
  void start();

  // While set, SIGTERM is ignored (the selftest `hang`); parent death still ends the worker.
  void ignore_sigterm(bool ignore) { ignore_sigterm_.store(ignore); }

  // The fds the watchdog owns (for the fd hygiene step to keep).
  int pidfd() const { return pidfd_.get(); }
  int signalfd() const { return signalfd_.get(); }

 private:
  void watch();

  pid_t parent_;
  int link_write_fd_;
  UniqueFd pidfd_;
  UniqueFd signalfd_;
  std::atomic<bool> ignore_sigterm_{false};
};

}  // namespace kiln::worker
