// kiln: the command-line way into a Kiln pool. Parses the command line and calls in.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <string_view>

#include "client/commands.h"
#include "common/cli.h"
#include "common/exit_codes.h"
#include "common/fd.h"
#include "common/version.h"

namespace {

// Options that shape the pool a subcommand starts; they become supervisor options.
struct PoolFlags {
  std::optional<int> workers;
  std::optional<uint64_t> job_timeout_ms;
  std::string socket;
  std::string supervisor;
  std::string log_level = "error";  // crash reports reach the results anyway
  std::vector<std::string> tools;   // NAME=COMMAND
  std::string trace;
  std::string distcc;  // distcc hosts, DISTCC_HOSTS syntax
  std::optional<uint64_t> status_interval_ms;
  bool selftest = false;

  void add_to(CLI::App* cmd, bool with_selftest) {
    cmd->add_option("--workers", workers, "pool size (default: the number of CPUs)")
        ->check(CLI::Range(1, 4096));
    cmd->add_option("--job-timeout-ms", job_timeout_ms, "run-time limit of each job");
    cmd->add_option("--socket", socket,
                    "use the shared daemon on this socket instead of a pool of its own (the "
                    "pool options then do not apply)");
    cmd->add_option("--supervisor", supervisor,
                    "kiln-supervisor binary (default: the one beside kiln)");
    cmd->add_option("--log-level", log_level, "the supervisor's log level (on stderr)")
        ->capture_default_str();
    cmd->add_option("--tool", tools,
                    "NAME=COMMAND: a warm tool in every worker, for jobs of kind NAME (see "
                    "kiln-supervisor --help; repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--status-interval-ms", status_interval_ms,
                    "how often a running job's status is reported (compile-db then names the "
                    "longest-running file; default 10000)");
    cmd->add_option("--trace", trace,
                    "write the pool's timeline to this file: Chrome Trace Event JSON, for "
                    "ui.perfetto.dev or chrome://tracing");
    cmd->add_option("--distcc", distcc,
                    "HOSTS: also run compile jobs on these distcc hosts (DISTCC_HOSTS syntax, "
                    "HOST[:PORT][/LIMIT]; see kiln-supervisor --help)");
    if (with_selftest) {
      cmd->add_flag("--enable-selftest", selftest, "serve the `selftest` kind (for tests)");
    }
  }
  kiln::client::PoolOptions options(std::optional<std::string> key_id) const {
    kiln::client::PoolOptions o;
    o.socket = socket;
    o.key_id = std::move(key_id);
    o.supervisor = supervisor;
    if (workers) o.args.insert(o.args.end(), {"--workers", std::to_string(*workers)});
    if (job_timeout_ms) {
      o.args.insert(o.args.end(), {"--job-timeout-ms", std::to_string(*job_timeout_ms)});
    }
    o.args.insert(o.args.end(), {"--log-level", log_level});
    o.distcc_hosts = distcc;
    if (!trace.empty()) o.args.insert(o.args.end(), {"--trace", trace});
    if (status_interval_ms) {
      o.args.insert(o.args.end(), {"--status-interval-ms", std::to_string(*status_interval_ms)});
    }
    if (selftest) o.args.push_back("--enable-selftest");
    for (const std::string& t : tools) o.args.insert(o.args.end(), {"--tool", t});
    return o;
  }
};

// `kiln exec cc -c a.c`: without `--`, the compiler's flags look like kiln's own, and CLI11 says
// only "The following argument was not expected: -c". The command's words after its first one,
// if any starts with '-' and no `--` came before, get a hint instead.
bool exec_command_needs_separator(int argc, char** argv) {
  if (argc < 3 || std::string_view(argv[1]) != "exec") return false;
  bool command_seen = false;
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--") return false;
    if (!command_seen && (a == "--socket" || a == "--supervisor")) {
      ++i;
      continue;
    }
    if (!command_seen && a.starts_with("-")) continue;  // kiln's own, or a typo CLI11 names
    if (command_seen && a.starts_with("-")) return true;
    command_seen = true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln: run compile jobs on a supervised pool of warm worker processes."};
  app.set_version_flag("--version", "kiln " + std::string(kiln::kVersion));
  app.require_subcommand(1);

  kiln::client::RunOptions run;
  PoolFlags run_pool;
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "Run jobs given as JSON lines ({\"kind\": ..., \"payload\": ...}, or for exec "
      "{\"argv\": [...], \"cwd\": ..., \"env\": {...}, \"stdin\": ...}); print each result as a "
      "JSON line. Bytes are shown as text when valid UTF-8, else base64 under <key>_base64. "
      "Exit status 0 only when every line was a job and every job succeeded (exec: exit code "
      "0).");
  run_pool.add_to(run_cmd, true);
  run_cmd->add_option("input", run.input, "a file of JSON lines, or - for stdin")
      ->capture_default_str();
  run_cmd->add_flag("--ordered", run.ordered, "print results in input order, not as they finish");

  kiln::client::CompileDbOptions db;
  PoolFlags db_pool;
  CLI::App* db_cmd = app.add_subcommand(
      "compile-db",
      "Compile every entry of a compile_commands.json through the pool: each file's "
      "diagnostics as one block when it finishes, a progress line on a terminal, and a summary. "
      "Exit status 0 only when every compile succeeded.");
  db_pool.add_to(db_cmd, false);
  db_cmd->add_option("--filter", db.filter, "only entries whose file matches this regex");
  db_cmd->add_flag("--progress", db.progress,
                   "print the progress line (and the longest-running file) even when stderr is "
                   "not a terminal, one line per update");
  db_cmd->add_option("database", db.database, "compile_commands.json")
      ->required()
      ->check(CLI::ExistingFile);

  std::vector<std::string> exec_argv;
  std::string exec_socket, exec_supervisor;
  CLI::App* exec_cmd = app.add_subcommand(
      "exec",
      "Run one command through a shared daemon, as a compiler launcher (kiln-exec is the same "
      "in a small binary made for CMAKE_C_COMPILER_LAUNCHER=kiln-exec): in this directory and "
      "environment, "
      "its stdout and stderr relayed, its exit code returned (128+signal when killed, 127 when "
      "it is not found, 126 when it cannot be executed, 125 when kiln cannot serve). Starts a "
      "daemon if none listens. Every command for a daemon waits at most "
      "$KILN_CONNECT_TIMEOUT_MS (default 10000) for it to accept and say hello.");
  exec_cmd->add_option("--socket", exec_socket,
                       "the daemon's socket (default: $KILN_SOCKET, else "
                       "$XDG_RUNTIME_DIR/kiln/supervisor.sock, else "
                       "/tmp/kiln-$UID/supervisor.sock)");
  exec_cmd->add_option("--supervisor", exec_supervisor,
                       "kiln-supervisor binary to start (default: the one beside kiln)");
  exec_cmd->add_option("command", exec_argv, "the command and its arguments, after --")->required();

  kiln::client::DaemonStartOptions daemon_start;
  CLI::App* daemon_cmd = app.add_subcommand(
      "daemon", "Start a shared daemon with the options you choose, or show the one running.");
  daemon_cmd->require_subcommand(1);
  CLI::App* start_cmd = daemon_cmd->add_subcommand(
      "start",
      "Start the shared daemon that kiln exec and kiln-exec use (instead of the one they start "
      "with default options), detached, unless one already serves the socket. Every option "
      "not listed here is kiln-supervisor's (--workers N, --job-timeout-ms, --tool NAME=COMMAND, "
      "--max-queue, ...; see kiln-supervisor --help) and is passed to it.");
  start_cmd->add_option("--socket", daemon_start.socket,
                        "the daemon's socket (default as for exec)");
  start_cmd->add_option("--supervisor", daemon_start.supervisor,
                        "kiln-supervisor binary to start (default: the one beside kiln)");
  start_cmd
      ->add_option("--idle-exit-ms", daemon_start.idle_exit_ms,
                   "exit after this long without clients (0: never)")
      ->capture_default_str();
  start_cmd->allow_extras();
  std::string status_socket;
  CLI::App* status_cmd = daemon_cmd->add_subcommand(
      "status",
      "Show the daemon's socket, pid, version, uptime, pool and jobs (exit 1: none answers).");
  status_cmd->add_option("--socket", status_socket, "the daemon's socket (default as for exec)");

  std::string top_socket;
  uint64_t top_interval_ms = 1000;
  bool top_once = false;
  CLI::App* top_cmd = app.add_subcommand(
      "top",
      "Show the daemon's workers and the job each is running (its file, elapsed time), the queue "
      "and the pool's figures, refreshed in place on a terminal.");
  top_cmd->add_option("--socket", top_socket, "the daemon's socket (default as for exec)");
  top_cmd->add_option("--interval-ms", top_interval_ms, "how often to refresh")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{50}, uint64_t{3600000}));
  top_cmd->add_flag("--once", top_once, "print it once and exit (as when not on a terminal)");

  std::string trace_socket, trace_file;
  CLI::App* trace_cmd = app.add_subcommand(
      "trace",
      "Have the daemon write its timeline to a file (Chrome Trace Event JSON, for "
      "ui.perfetto.dev or chrome://tracing), or stop.");
  trace_cmd->require_subcommand(1);
  CLI::App* trace_start = trace_cmd->add_subcommand("start", "start writing it to FILE");
  trace_start->add_option("file", trace_file, "the timeline's file (replaced)")->required();
  trace_start->add_option("--socket", trace_socket, "the daemon's socket (default as for exec)");
  CLI::App* trace_stop =
      trace_cmd->add_subcommand("stop", "stop writing it; the file is then complete");
  trace_stop->add_option("--socket", trace_socket, "the daemon's socket (default as for exec)");

  std::string stats_socket;
  CLI::App* stats_cmd = app.add_subcommand("stats", "Print a daemon's stats as JSON.");
  stats_cmd->add_option("--socket", stats_socket, "the daemon's socket (default as for exec)");

  std::string shutdown_socket;
  bool drain = false;
  CLI::App* shutdown_cmd = app.add_subcommand("shutdown", "Stop a daemon.");
  shutdown_cmd->add_option("--socket", shutdown_socket,
                           "the daemon's socket (default as for exec)");
  shutdown_cmd->add_flag("--drain", drain, "finish queued and running jobs first");

  if (exec_command_needs_separator(argc, argv)) {
    std::fprintf(stderr,
                 "kiln exec: put -- before the command, so that its options are not taken for "
                 "kiln's: kiln exec [--socket PATH] -- %s ...\n",
                 argv[2][0] == '-' ? "cc" : argv[2]);
    return kiln::exit_code::kUsage;
  }
  if (std::optional<int> status = kiln::parse_command_line(app, argc, argv)) return *status;
  if (exec_cmd->parsed()) {
    return kiln::client::exec_command({exec_argv, exec_socket, exec_supervisor});
  }
  if (start_cmd->parsed()) {
    daemon_start.supervisor_options = start_cmd->remaining();
    return kiln::client::daemon_start_command(daemon_start);
  }
  if (status_cmd->parsed()) return kiln::client::daemon_status_command(status_socket);
  if (top_cmd->parsed()) return kiln::client::top_command(top_socket, top_interval_ms, top_once);
  if (trace_start->parsed()) return kiln::client::trace_command(trace_socket, trace_file);
  if (trace_stop->parsed()) return kiln::client::trace_command(trace_socket, std::nullopt);
  if (stats_cmd->parsed()) return kiln::client::stats_command(stats_socket);
  if (shutdown_cmd->parsed()) return kiln::client::shutdown_command(shutdown_socket, drain);
  // A daemon reached with --socket must serve the build of $KILN_KEY, when one is given.
  kiln::Expected<std::optional<std::string>> key_id = kiln::client::key_id_from_env();
  if (!key_id) {
    std::fprintf(stderr, "kiln: %s\n", key_id.error().c_str());
    return kiln::exit_code::kUsage;
  }
  if (run_cmd->parsed()) {
    run.pool = run_pool.options(*key_id);
    return kiln::client::run_jobs(run);
  }
  db.pool = db_pool.options(*key_id);
  return kiln::client::compile_db(db);
}
