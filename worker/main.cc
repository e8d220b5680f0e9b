// kiln-worker: parses its options and calls in (worker/worker.cc).
#include <CLI/CLI.hpp>

#include "common/cli.h"
#include "common/logging.h"
#include "common/version.h"
#include "worker/watchdog.h"
#include "worker/worker.h"

int main(int argc, char** argv) {
  kiln::worker::Options options;
  CLI::App app{
      "kiln-worker: serves compile jobs for kiln-supervisor over an inherited pipe pair.\n"
      "Launched only by kiln-supervisor, which passes the build key in KILN_KEY; started by\n"
      "hand (its parent is not --parent) it exits at once and prints nothing."};
  app.set_version_flag("--version", "kiln-worker " + std::string(kiln::kVersion));
  app.add_option("--parent", options.parent, "pid of the supervisor")->required();
  app.add_option("--read-fd", options.read_fd, "fd the supervisor's frames arrive on")
      ->required()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--write-fd", options.write_fd, "fd to send frames on")
      ->required()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-frame", options.max_frame, "largest frame body in bytes")
      ->capture_default_str()
      ->check(CLI::Range(1u, 0xffffffffu));
  app.add_option("--grace-ms", options.grace_ms,
                 "after SIGTERM to a timed-out command, wait this long before SIGKILL")
      ->capture_default_str();
  app.add_option("--tool", options.tools,
                 "NAME=COMMAND: keep one warm process of this tool and serve kind NAME on it "
                 "(docs/protocol.md \"Tool link\"; repeatable)")
      ->allow_extra_args(false);
  app.add_flag("--enable-selftest", options.enable_selftest,
               "serve the `selftest` kind (fault injection for tests)");
  app.add_option("--log-level", options.log_level,
                 "trace, debug, info, warn, error, critical or off (default: SPDLOG_LEVEL, "
                 "else info)")
      ->check([](const std::string& l) {
        return kiln::valid_log_level(l) ? "" : "unknown log level '" + l + "'";
      });
  if (std::optional<int> status = kiln::parse_command_line(app, argc, argv)) return *status;
  const int status = kiln::worker::run(options);
  kiln::worker::finish_or_wait();
  return status;
}
