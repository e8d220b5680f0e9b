// The process group of the exec command that is running now (0: none). Written by the exec job,
// read by the watchdog and the crash handler, which must kill it before the worker dies: this is
// signal-context state, so it is a lock-free atomic and not an object passed around.
#pragma once

#include <sys/types.h>

#include <atomic>

namespace kiln::worker {

inline std::atomic<pid_t> g_job_group{0};
static_assert(std::atomic<pid_t>::is_always_lock_free);

// SIGKILL to the running command's group, if any. Async-signal-safe.
void kill_job_group();

}  // namespace kiln::worker
