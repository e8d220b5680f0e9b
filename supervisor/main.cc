// kiln-supervisor: parses its options and calls in (supervisor/run.cc).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>

#include "common/cli.h"
#include "common/exit_codes.h"
#include "common/fd.h"
#include "common/logging.h"
#include "common/tool_spec.h"
#include "common/version.h"
#include "supervisor/hosts.h"
#include "supervisor/options.h"

int main(int argc, char** argv) {
  kiln::supervisor::Options o;
  CLI::App app{
      "kiln-supervisor: a supervised pool of warm kiln-worker processes for compile jobs.\n"
      "Speaks length-prefixed msgpack frames (docs/protocol.md) on --read-fd/--write-fd, on\n"
      "stdin/stdout, or to every client of a Unix socket (--listen). The build key comes from\n"
      "--key-file, else KILN_KEY (base64), else is random."};
  app.set_version_flag("--version", "kiln-supervisor " + std::string(kiln::kVersion));
  app.add_option("--workers", o.workers, "pool size (default: the number of CPUs)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--worker", o.worker_path, "worker binary (default: kiln-worker beside this one)");
  auto* read_fd = app.add_option("--read-fd", o.read_fd, "fd the client's frames arrive on")
                      ->check(CLI::NonNegativeNumber);
  auto* write_fd = app.add_option("--write-fd", o.write_fd, "fd to send frames to the client on")
                       ->check(CLI::NonNegativeNumber);
  read_fd->needs(write_fd);
  write_fd->needs(read_fd);
  auto* listen = app.add_option("--listen", o.listen,
                                "serve clients on this Unix socket (mode 0600, same user only) "
                                "instead of a pipe pair");
  listen->excludes(read_fd)->excludes(write_fd);
  app.add_option("--max-connections", o.max_connections,
                 "--listen: clients served at once; more are refused with too_many_connections "
                 "(default 0: the open-file limit less what the workers need, at most 4096)")
      ->capture_default_str();
  app.add_option("--idle-exit-ms", o.idle_exit_ms,
                 "with --listen: exit after this long with no client and no job (0: never)")
      ->capture_default_str()
      ->needs(listen);
  app.add_option("--parent", o.parent,
                 "shut down when this process is gone (default: the process that started us)")
      ->check(CLI::PositiveNumber);
  app.add_option("--key-file", o.key_file, "file holding the base64 build key")
      ->check(CLI::ExistingFile);
  app.add_option("--job-timeout-ms", o.job_timeout_ms,
                 "run-time limit of jobs that set none (0: none)")
      ->capture_default_str();
  app.add_option("--start-timeout-ms", o.start_timeout_ms,
                 "a worker that has not said ready this long after its start is stopped as a "
                 "failed start (crash-loop back-off applies)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{86'400'000}));
  app.add_option("--grace-ms", o.grace_ms, "after SIGTERM, wait this long before SIGKILL")
      ->capture_default_str();
  app.add_option("--idle-quiesce-ms", o.idle_quiesce_ms,
                 "stop the workers after this long without jobs (0: never)")
      ->capture_default_str();
  app.add_option("--max-jobs-per-worker", o.max_jobs_per_worker,
                 "replace a worker after this many jobs (0: never)")
      ->capture_default_str();
  app.add_option("--pipeline-depth", o.pipeline_depth,
                 "jobs a worker may hold at once: the one it runs and those sent ahead of their "
                 "turn so that it never waits for the next (only behind jobs that take under "
                 "2 ms; 1: none sent ahead)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--max-worker-rss-mb", o.max_worker_rss_mb,
                 "replace a worker whose RSS is above this after a job (0: never)")
      ->capture_default_str();
  app.add_option("--max-queue", o.max_queue, "jobs that may wait; more are `overloaded`")
      ->capture_default_str();
  app.add_option("--max-queue-mb", o.max_queue_mb,
                 "payload MiB that may wait, all connections together; more are `overloaded`")
      ->capture_default_str();
  app.add_option("--max-client-queue", o.max_client_queue,
                 "jobs one connection may have waiting; more are `overloaded` (default 0: "
                 "--max-queue in pipe mode, a quarter of it with --listen; connections take "
                 "turns for the workers)")
      ->capture_default_str();
  app.add_option("--max-client-queue-mb", o.max_client_queue_mb,
                 "payload MiB one connection may have waiting; more are `overloaded` (default 0: "
                 "as for --max-client-queue, of --max-queue-mb)")
      ->capture_default_str();
  app.add_option("--max-frame", o.max_frame, "largest frame body in bytes")
      ->capture_default_str()
      ->check(CLI::Range(4096u, 0xffffffffu));
  app.add_option("--status-interval-ms", o.status_interval_ms,
                 "send `status` for jobs running this long, every this long (0: never)")
      ->capture_default_str();
  app.add_option("--tool", o.tools,
                 "NAME=COMMAND: every worker keeps one warm process of COMMAND (split as a shell "
                 "would, not run by one) and runs jobs of kind NAME on it (docs/protocol.md "
                 "\"Tool link\"; repeatable)")
      ->allow_extra_args(false)
      ->check([](const std::string& spec) {
        kiln::Expected<kiln::ToolSpec> t = kiln::parse_tool_spec(spec);
        return t ? std::string() : t.error();
      });
  app.add_option("--zygote", o.zygotes,
                 "NAME: start tool NAME once per pool, in a zygote, and fork every worker's "
                 "process of it from there (docs/protocol.md \"Zygote link\"; repeatable)")
      ->allow_extra_args(false);
  app.add_flag("--enable-selftest", o.enable_selftest,
               "serve the `selftest` kind (fault injection for tests)");
  app.add_option("--log-level", o.log_level,
                 "trace, debug, info, warn, error, critical or off (default: SPDLOG_LEVEL, else "
                 "info)")
      ->check([](const std::string& l) {
        return kiln::valid_log_level(l) ? "" : "unknown log level '" + l + "'";
      });
  app.add_option("--log-file", o.log_file, "log here instead of stderr");
  app.add_option("--log-max-mb", o.log_max_mb,
                 "write at most this many MiB to --log-file, then a line that says so and nothing "
                 "more (0: no cap)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 30));
  app.add_option("--trace", o.trace_file,
                 "write a timeline of the pool to this file as it runs: Chrome Trace Event JSON, "
                 "for ui.perfetto.dev or chrome://tracing (a lane per worker slot, a span per "
                 "job, worker starts and crashes, queue and load counters); refused unless it "
                 "is a regular file or does not exist");
  app.add_option("--trace-max-mb", o.trace_max_mb,
                 "write at most this many MiB of timeline (--trace, kiln trace), then a last "
                 "mark that says so and nothing more (0: no cap)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 30));
  app.add_option("--distcc", o.distcc_hosts,
                 "HOSTS: also run compile jobs on these distcc hosts, in distcc's DISTCC_HOSTS "
                 "syntax (HOST[:PORT][/LIMIT][,OPTIONS], @HOST for SSH): LIMIT more slots each "
                 "(docs/design.md \"distcc hosts\")")
      ->check([](const std::string& hosts) {
        auto parsed = kiln::supervisor::parse_hosts(hosts);
        return parsed ? std::string() : parsed.error();
      });
  app.add_option("--distcc-client", o.distcc_client, "the distcc client to run for --distcc")
      ->capture_default_str();
  if (std::optional<int> status = kiln::parse_command_line(app, argc, argv)) return *status;
  if (!o.distcc_hosts.empty() && !kiln::supervisor::parse_hosts(o.distcc_hosts)->empty()) {
    std::optional<std::string> client = kiln::first_executable({o.distcc_client});
    if (!client) {
      std::fprintf(stderr, "kiln-supervisor: --distcc: no distcc client \"%s\" (install distcc)\n",
                   o.distcc_client.c_str());
      return kiln::exit_code::kUsage;
    }
    o.distcc_client = *client;
  }
  if (kiln::Expected<std::vector<kiln::ToolSpec>> tools = kiln::parse_tool_specs(o.tools); !tools) {
    std::fprintf(stderr, "kiln-supervisor: %s\n", tools.error().c_str());
    return kiln::exit_code::kUsage;
  }
  for (const std::string& name : o.zygotes) {
    if (std::none_of(o.tools.begin(), o.tools.end(), [&name](const std::string& spec) {
          return spec.compare(0, spec.find('='), name) == 0;
        })) {
      std::fprintf(stderr, "kiln-supervisor: --zygote %s: no --tool of that name\n", name.c_str());
      return kiln::exit_code::kUsage;
    }
  }
  return kiln::supervisor::run(std::move(o));
}
