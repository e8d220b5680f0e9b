// The worker's start-up, in docs/design.md's order (that of PyTorch's compile_worker __main__ and
// _async_compile_initializer), then the serve loop.
#include "worker/worker.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "common/build_key.h"
#include "common/exit_codes.h"
#include "common/fd.h"
#include "common/logging.h"
#include "worker/crash_handler.h"
#include "worker/job_group.h"
#include "worker/serve.h"
#include "worker/tool.h"
#include "worker/watchdog.h"

namespace kiln::worker {

namespace {

// The tools, warm before the first job, their names in `ready.kinds` and their pids in
// `ready.tools`. One that fails ends the worker before its ready (kToolFailed), so the
// supervisor's crash-loop handling applies; what it printed is on our stderr already.
int start_tools(const Options& options, const std::string& key,
                std::vector<std::unique_ptr<Tool>>& tools, proto::Ready& ready) {
  Expected<std::vector<ToolSpec>> specs = parse_tool_specs(options.tools);
  if (!specs) {
    std::fprintf(stderr, "kiln-worker: %s\n", specs.error().c_str());
    return exit_code::kUsage;
  }
  for (ToolSpec& spec : *specs) {
    ready.kinds.push_back(spec.name);
    tools.push_back(
        std::make_unique<Tool>(std::move(spec), tools.size(), options.max_frame, options.grace_ms));
    for (const std::string& zygote : options.zygotes) {
      const std::size_t eq = zygote.find('=');
      if (zygote.compare(0, eq, tools.back()->name()) == 0) {
        tools.back()->use_zygote(zygote.substr(eq + 1));
      }
    }
    if (Expected<void> started = tools.back()->start(key); !started) {
      std::fprintf(stderr, "kiln-worker: %s\n", started.error().c_str());
      return exit_code::kToolFailed;
    }
  }
  if (!tools.empty()) {
    ready.tools.emplace();
    for (const auto& tool : tools) ready.tools->push_back(static_cast<uint64_t>(tool->pid()));
  }
  return exit_code::kOk;
}

// Start-up steps 5-7: the signals the supervisor decides on, the crash handler, the subreaper
// and the fds.
void secure_the_process(const Options& options, const Watchdog& watchdog) {
  // 5. Ctrl-C reaches the whole process group; the supervisor decides. A closed link is an
  // error to handle, not a death.
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGPIPE, SIG_IGN);

  // 6.
  install_crash_handler();

  // Commands that escape their process group become the worker's children when their parent
  // dies, so the exec job can still find and end them.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) fatal_errno("prctl(PR_SET_CHILD_SUBREAPER)");

  // 7. Only the link (and the watchdog's own close-on-exec fds) stay open.
  close_fds_except({options.read_fd, options.write_fd, watchdog.pidfd(), watchdog.signalfd()});
  if (!set_cloexec(options.read_fd) || !set_cloexec(options.write_fd)) {
    fatal_errno("fcntl(FD_CLOEXEC) on the link");  // checked open at the start
  }
}

// 2. Started by hand, or the parent is already gone: leave quietly (kOk). The link's fds must be
// open. nullopt to go on, else the worker's exit status.
std::optional<int> check_parent_and_link(const Options& options) {
  if (::getppid() != options.parent) return exit_code::kOk;
  // PR_SET_PDEATHSIG delivers SIGTERM, which the watchdog turns into "kill the command's group,
  // then exit": SIGKILL here would leave the compiler's own children running.
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) fatal_errno("prctl(PR_SET_PDEATHSIG)");
  // The parent may have died between the check and prctl: then no signal would ever come.
  if (::getppid() != options.parent) return exit_code::kOk;
  // Before the worker opens anything: its own fds (the watchdog's signalfd and pidfd) would take
  // the lowest free numbers, and a link fd that was never passed would then look open.
  if (::fcntl(options.read_fd, F_GETFD) == -1 || ::fcntl(options.write_fd, F_GETFD) == -1) {
    std::fprintf(stderr, "kiln-worker: --read-fd %d / --write-fd %d is not open\n", options.read_fd,
                 options.write_fd);
    return exit_code::kUsage;
  }
  return std::nullopt;
}

struct Key {
  std::string encoded;  // as KILN_KEY carried it: the tools get it so
  std::string raw;
};

// 3. The build key, out of the environment at once: commands the worker runs must not see it,
// in their environment or in ours under /proc. nullopt (having said why) when it is missing or
// not valid.
std::optional<Key> take_key() {
  const std::optional<std::string> encoded = take_key_from_env();
  if (!encoded || encoded->empty()) {
    std::fprintf(stderr, "kiln-worker: KILN_KEY is not set (the supervisor passes the key)\n");
    return std::nullopt;
  }
  std::optional<std::string> raw = base64_decode(*encoded);
  if (!raw || raw->empty()) {
    std::fprintf(stderr, "kiln-worker: KILN_KEY is not valid padded base64\n");
    return std::nullopt;
  }
  return Key{*encoded, std::move(*raw)};
}

}  // namespace

int run(const Options& options) {
  if (std::optional<int> end = check_parent_and_link(options)) return *end;  // 2
  const std::optional<Key> key = take_key();                                 // 3
  if (!key) return exit_code::kUsage;

  Expected<void> logging = setup_logging("kiln-worker", LogOptions{options.log_level, ""});
  if (!logging) {
    std::fprintf(stderr, "kiln-worker: %s\n", logging.error().c_str());
    return exit_code::kUsage;
  }

  // 4. The watchdog (it also blocks SIGTERM for every thread). Its thread starts before the first
  // tool does, or else just after `ready`: off the path of a worker's start, where creating it
  // took some 100 us (bench/NOTES.md). What it must act on waits in its fds meanwhile.
  auto* watchdog = new Watchdog(options.parent, options.write_fd);  // lives until the end
  const bool watchdog_before_tools = !options.tools.empty();

  secure_the_process(options, *watchdog);  // 5-7

  // 8.
  if (watchdog_before_tools) watchdog->start();
  std::vector<std::unique_ptr<Tool>> tools;
  proto::Ready ready{proto::kProtocolVersion, static_cast<uint64_t>(::getpid()),
                     served_kinds(options.enable_selftest), key_id(key->raw), std::nullopt};
  if (int status = start_tools(options, key->encoded, tools, ready); status != exit_code::kOk) {
    return status;
  }

  // 9.
  Link link(options.read_fd, options.write_fd, options.max_frame);
  if (Expected<void> sent = link.send(ready); !sent) {
    spdlog::error("{}", sent.error());
    return exit_code::kOk;
  }
  if (!watchdog_before_tools) watchdog->start();
  std::vector<pid_t> tool_pids;
  for (const auto& tool : tools) tool_pids.push_back(tool->pid());
  JobContext context{options, link, *watchdog, tools, std::move(tool_pids)};
  const int status = serve(context);
  for (auto& tool : tools) tool->stop();
  return status;
}

}  // namespace kiln::worker
