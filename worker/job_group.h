// The process groups the worker must end before it dies: that of the exec command running now,
// and that of each warm tool (0: none). Written by the exec job and the tools, read by the
// watchdog and the crash handler: this is signal-context state, so it is lock-free atomics and
// not objects passed around.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>

#include "common/tool_spec.h"

namespace kiln::worker {

inline std::atomic<pid_t> g_job_group{0};
static_assert(std::atomic<pid_t>::is_always_lock_free);

inline std::atomic<pid_t> g_tool_groups[kMaxTools] = {};

// SIGKILL to the running command's group and to every tool's group. Async-signal-safe.
void kill_job_groups();

}  // namespace kiln::worker
