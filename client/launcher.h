// The launcher: one command run as if run directly, through the shared daemon when it can serve
// it. `kiln exec` and `kiln-exec` (the small binary for CMAKE_<LANG>_COMPILER_LAUNCHER) are both
// this; it needs no thread and nothing of Pool, so that a build pays little for each command.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace kiln::client {

// --socket, else $KILN_SOCKET, else $XDG_RUNTIME_DIR/kiln/supervisor.sock, else
// /tmp/kiln-$UID/supervisor.sock; the directory is created 0700 and must be private to us.
Expected<std::string> default_socket_path();

struct ExecCommandOptions {
  std::vector<std::string> argv;
  std::string socket;      // "": default_socket_path()
  std::string supervisor;  // to start one: "": find_supervisor()'s
};

// One command through the daemon, in this directory and environment, as a compiler launcher:
// its stdout and stderr relayed, its exit code returned (128+signal when killed; 127 when it
// cannot be started). Starts a daemon (detached, idle exit after 5 minutes, $KILN_WORKERS
// workers) when none answers; exactly one survives when many launchers start one at once. When
// the daemon cannot serve the command (none can be started or reached, it is shutting down,
// overloaded, unavailable, or dies mid-job) the command runs here, with one line on stderr
// saying so; KILN_FALLBACK=0 makes that exit 125 instead, and so does a daemon we refuse to trust
// (another user's, another build key's).
int exec_command(const ExecCommandOptions& options);

}  // namespace kiln::client
