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

// The object file of a compile running on a distcc host now ("" when none): removed when the job
// ends without its answer (a timeout, a cancel, a host failure), so that no partial object is
// left (distcc writes it in place). Written before the command starts, read by the watchdog.
inline char g_job_object[4096];
inline std::atomic<bool> g_job_object_set{false};

// SIGKILL to the running command's group and to every tool's group. Async-signal-safe.
void kill_job_groups();

// After kill_job_groups(): waits (at most `wait_ms`) for the running command to be gone, then
// removes its object file, if it has one (g_job_object).
void remove_job_object(int wait_ms);

}  // namespace kiln::worker
