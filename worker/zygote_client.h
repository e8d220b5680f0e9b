// The worker's side of the zygote link (docs/protocol.md "Zygote link"): a tool forked from its
// pool's warm zygote instead of started from scratch. The worker asks for it with its tool link's
// fds; the zygote forks it and answers with its pid and a pidfd of it. Since only the zygote can
// reap it, the zygote tells the worker how it ended, once the worker has let go of it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "common/fd.h"
#include "common/result.h"

namespace kiln::worker {

struct ZygoteChild {
  pid_t pid = 0;
  UniqueFd pidfd;  // readable once the tool has exited
  UniqueFd link;   // the zygote's `exited` comes on it
};

// The fds the tool gets as its 0, 1 and 2, 3 and 4 (docs/protocol.md "Tool link").
struct ZygoteFds {
  int devnull, output, commands, events;
};

// Connects to the zygote's socket `address` (abstract when it starts with '@'), asks for a tool
// and waits for the answer: while the zygote warms up, as long as that takes (the supervisor's
// start timeout bounds the worker's start). The error says why no tool was forked: the zygote is
// not there, refused, or went away.
Expected<ZygoteChild> fork_from_zygote(const std::string& address, const ZygoteFds& fds);

// After the tool has exited (and its group was killed): says the worker lets go of it, and waits
// until the deadline for the zygote's word on how it ended: "exited with status 1", "was killed
// by SIGSEGV", or why that is unknown.
std::string await_zygote_exit(ZygoteChild& child, std::chrono::steady_clock::time_point deadline);

}  // namespace kiln::worker
