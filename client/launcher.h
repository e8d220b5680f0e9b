// The launcher: one command run as if run directly, through the shared daemon when it can serve
// it. `kiln exec` and `kiln-exec` (the small binary for CMAKE_<LANG>_COMPILER_LAUNCHER) are both
// this; it needs no thread and nothing of Pool, so that a build pays little for each command.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "client/daemon_link.h"
#include "common/result.h"

namespace kiln::client {

// --socket, else $KILN_SOCKET, else $XDG_RUNTIME_DIR/kiln/supervisor.sock, else
// /tmp/kiln-$UID/supervisor.sock; the directory is created 0700 and must be private to us.
Expected<std::string> default_socket_path();

// This process's directory, however long; an error when it has none (removed, unreadable).
Expected<std::string> current_directory();

// The environment a daemon starts with. kMinimal, for the daemon a launcher starts, which outlives
// the build that happened to start it and serves every later one: none of that build's variables
// (its secrets, an LD_PRELOAD) but HOME (a distcc client without it cannot run, ccache keeps its
// cache there), the build key it serves (KILN_KEY) and its log level (SPDLOG_LEVEL), and
// PATH=/usr/local/bin:/usr/bin:/bin; its jobs get their caller's environment with them. kCallers,
// for `kiln daemon start`: the environment it was started in, which its warm tools may need
// (PYTHONPATH, ...).
enum class DaemonEnvironment { kMinimal, kCallers };
inline constexpr const char* kDaemonPath = "PATH=/usr/local/bin:/usr/bin:/bin";

// Starts a daemon on `socket`: `supervisor --listen socket --log-file socket.log options...`,
// detached (its own session, nothing of this process's stdio, directory, umask, nice value or
// soft limits; `environment` as above), its stderr appended to the log as well. Waits up to
// `wait` for it to answer and connects (sending `first_frame`, as DaemonLink::connect does); when
// it does not, the error quotes what the log got meanwhile. If another daemon wins the socket,
// that one is connected to.
Expected<DaemonLink> start_daemon(const std::string& socket, const std::string& supervisor,
                                  const std::vector<std::string>& options,
                                  std::chrono::milliseconds wait, DaemonEnvironment environment,
                                  std::string_view first_frame = {});

struct ExecCommandOptions {
  std::vector<std::string> argv;
  std::string socket;      // "": default_socket_path()
  std::string supervisor;  // to start one: "": find_supervisor()'s
};

// One command through the daemon, in this directory and environment, as a compiler launcher:
// its stdout and stderr relayed, its exit code returned (128+signal when killed; 127 when it is
// not found, 126 when it cannot be executed). Starts a daemon (detached, idle exit after 5
// minutes, $KILN_WORKERS workers) when none listens; exactly one survives when many launchers
// start one at once. When the daemon cannot serve the command (none can be started or reached,
// none accepts and says hello within connect_timeout(), it is shutting down, overloaded,
// unavailable, or dies mid-job; the command's directory or stdin cannot be given to a job) the
// command runs here, with one line on stderr saying so; KILN_FALLBACK=0 makes that exit 125
// instead, and so does a daemon we refuse to trust (another user's, another build key's, a socket
// we may not connect to). A command that ran but whose output passed what a job returns is not
// run again: that exits 125 too, with a line saying so.
int exec_command(const ExecCommandOptions& options);

}  // namespace kiln::client
