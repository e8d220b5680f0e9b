// The `kiln` command's subcommands (main.cc parses the command line and calls in).
#pragma once

#include <string>
#include <vector>

#include "client/pool.h"

namespace kiln::client {

struct RunOptions {
  PoolOptions pool;
  std::string input = "-";  // a file, or - for stdin
  bool ordered = false;     // print results in input order instead of as they finish
};
// Jobs as JSON lines in, results as JSON lines out. Exit status 0 only when every line was a
// valid job and every job succeeded (for exec: also exited 0).
int run_jobs(const RunOptions& options);

struct CompileDbOptions {
  PoolOptions pool;
  std::string database;
  std::string filter;  // ECMAScript regex searched in each entry's `file`; "" = all
};
// Every entry of a compile_commands.json through the pool, with diagnostics per file, a progress
// line on a terminal and a summary. Exit status 0 only when every compile succeeded.
int compile_db(const CompileDbOptions& options);

// ---- A shared daemon (kiln-supervisor --listen) ----

// --socket, else $KILN_SOCKET, else $XDG_RUNTIME_DIR/kiln/supervisor.sock, else
// /tmp/kiln-$UID/supervisor.sock; the directory is created 0700 and must be private to us.
Expected<std::string> default_socket_path();
// Connects to the daemon on `socket`: one served by this user, for the build of $KILN_KEY when it
// is set (Pool::connect's checks).
Expected<std::unique_ptr<Pool>> connect_to_daemon(const std::string& socket);
// Connects to the daemon on `socket`, starting one (detached, idle exit after 5 minutes) if none
// answers. Exactly one daemon survives when many launchers start one at once.
Expected<std::unique_ptr<Pool>> connect_or_start(const std::string& socket,
                                                 const std::string& supervisor);

struct ExecCommandOptions {
  std::string socket;        // resolved: --socket or default_socket_path()
  std::string supervisor;    // for auto-start
  std::string cannot_start;  // why no daemon can be started ("" when one can)
  std::vector<std::string> argv;
};
// One command through the daemon, in this directory and environment, as a compiler launcher:
// its stdout and stderr relayed, its exit code returned (128+signal when killed; 127 when it
// cannot be started). When the daemon cannot serve it (none can be started or reached, it is
// shutting down, overloaded, unavailable, or dies mid-job) the command runs here, with one line
// on stderr saying so; KILN_FALLBACK=0 makes that exit 125 instead, and so does a daemon we
// refuse to trust (another user's, another build key's).
int exec_command(const ExecCommandOptions& options);
int stats_command(const std::string& socket);
int shutdown_command(const std::string& socket, bool drain);

}  // namespace kiln::client
