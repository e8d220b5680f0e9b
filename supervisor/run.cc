// The supervisor's start: the key, logging, process-wide settings, then the loop.
#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/build_key.h"
#include "common/exit_codes.h"
#include "common/fd.h"
#include "common/logging.h"
#include "supervisor/options.h"
#include "supervisor/supervisor.h"

namespace kiln::supervisor {
namespace {

// The build key: --key-file, else KILN_KEY (`from_env`), else a random one; base64 text either
// way.
Expected<std::string> load_key(const Options& options, const std::optional<std::string>& from_env) {
  std::string text;
  std::string source;
  if (!options.key_file.empty()) {
    std::ifstream in(options.key_file);
    if (!in) return fail("cannot read --key-file " + options.key_file);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    source = "--key-file " + options.key_file;
  } else if (from_env && !from_env->empty()) {
    text = *from_env;
    source = "KILN_KEY";
  } else {
    return random_key();
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::optional<std::string> key = base64_decode(text);
  if (!key || key->empty()) return fail(source + " is not a non-empty padded base64 key");
  return std::move(*key);
}

// Every fd the hard limit allows, and a connection limit that leaves room for the workers: each
// worker takes a few fds (its link, its stderr, its process), and a crowd of idle connections
// must not stop a dead worker from being replaced. About 1,020 idle connections used to exhaust
// a daemon with the default limit of 1024.
std::size_t connection_limit(const Options& options) {
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  if (options.max_connections != 0) return options.max_connections;
  const uint64_t reserve =
      64 + 8 * static_cast<uint64_t>(std::max<std::size_t>(options.workers, 64));
  const uint64_t limit = nofile.rlim_cur > reserve ? nofile.rlim_cur - reserve : 1;
  return static_cast<std::size_t>(std::clamp<uint64_t>(limit, 1, 4096));
}

}  // namespace

int run(Options options) {
  // Taken out of the environment first, so no job and no /proc/<pid>/environ reader sees it.
  Expected<std::string> key = load_key(options, take_key_from_env());
  if (!key) {
    std::fprintf(stderr, "kiln-supervisor: %s\n", key.error().c_str());
    return exit_code::kUsage;
  }
  Expected<void> logging = setup_logging(
      "kiln-supervisor", LogOptions{options.log_level, options.log_file, options.log_max_mb << 20});
  if (!logging) {
    std::fprintf(stderr, "kiln-supervisor: %s\n", logging.error().c_str());
    return exit_code::kUsage;
  }
  // Nothing the supervisor holds may leak into a worker (one worker holding another's pipe
  // means EOF never comes): every inherited fd, the log file included, is close-on-exec.
  cloexec_from(3);
  // A write to a dead worker or client is an error to handle, not the supervisor's death.
  std::signal(SIGPIPE, SIG_IGN);
  options.max_connections = connection_limit(options);
  Supervisor supervisor(std::move(options), std::move(*key));
  const int status = supervisor.run();
  spdlog::shutdown();
  return status;
}

}  // namespace kiln::supervisor
