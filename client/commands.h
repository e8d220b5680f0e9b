// The `kiln` command's subcommands (main.cc parses the command line and calls in).
#pragma once

#include <string>
#include <vector>

#include "client/launcher.h"
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
  std::string filter;     // ECMAScript regex searched in each entry's `file`; "" = all
  bool progress = false;  // the progress line even when stderr is not a terminal
};
// Every entry of a compile_commands.json through the pool, with diagnostics per file, a progress
// line on a terminal and a summary. Exit status 0 only when every compile succeeded.
int compile_db(const CompileDbOptions& options);

// ---- A shared daemon (kiln-supervisor --listen); kiln exec is client/launcher.h ----

// Connects to the daemon on `socket`: one served by this user, for the build of $KILN_KEY when it
// is set (Pool::connect's checks).
Expected<std::unique_ptr<Pool>> connect_to_daemon(const std::string& socket);
struct DaemonStartOptions {
  std::string socket;                           // "": default_socket_path()
  std::string supervisor;                       // "": find_supervisor()'s
  uint64_t idle_exit_ms = 300000;               // 0: never
  std::vector<std::string> supervisor_options;  // kiln-supervisor's own (--workers 8, --tool ...)
};
// Starts a daemon on the socket with those options, unless one already answers there, and waits
// for it to answer: prints its socket, pid and pool size. Exit status 0 when it serves.
int daemon_start_command(const DaemonStartOptions& options);
// Prints the daemon's socket, pid, version, uptime, pool and jobs; exit status 1 when none runs.
int daemon_status_command(const std::string& socket);
// The daemon's jobs and workers now: redrawn in place every `interval_ms` on a terminal (until
// interrupted), printed once otherwise or when `once`. Exit status 1 when no daemon runs.
int top_command(const std::string& socket, uint64_t interval_ms, bool once);
// Has the daemon write its timeline to `file` (kiln-supervisor --trace, from now on), or with
// nullopt stop writing it (the file is then complete). Exit status 1 when it cannot.
int trace_command(const std::string& socket, const std::optional<std::string>& file);
int stats_command(const std::string& socket);
int shutdown_command(const std::string& socket, bool drain);

}  // namespace kiln::client
