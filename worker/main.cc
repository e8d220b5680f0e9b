// kiln-worker: parses its options and calls in (worker/worker.cc).
//
// With getopt_long, not CLI11 as the other commands: a pool starts one worker per slot, and
// CLI11, with the iostreams and locales it brings in, was a third of a worker's start-up and
// about 160 KiB of every idle worker's memory (bench/NOTES.md).
#include <getopt.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "common/exit_codes.h"
#include "common/logging.h"
#include "common/result.h"
#include "common/text.h"
#include "common/version.h"
#include "worker/watchdog.h"
#include "worker/worker.h"

namespace {

constexpr const char kHelp[] =
    "kiln-worker: serves compile jobs for kiln-supervisor over an inherited pipe pair.\n"
    "Launched only by kiln-supervisor, which passes the build key in KILN_KEY; started by\n"
    "hand (its parent is not --parent) it exits at once and prints nothing.\n"
    "\n"
    "Usage: kiln-worker --parent PID --read-fd FD --write-fd FD [OPTIONS]\n"
    "\n"
    "Options:\n"
    "  -h, --help                 print this help and exit\n"
    "  --version                  print the version and exit\n"
    "  --parent PID               pid of the supervisor (required)\n"
    "  --read-fd FD               fd the supervisor's frames arrive on (required)\n"
    "  --write-fd FD              fd to send frames on (required)\n"
    "  --max-frame BYTES          largest frame body in bytes (default %u)\n"
    "  --grace-ms MS              after SIGTERM to a timed-out command, wait this long before\n"
    "                             SIGKILL (default %u)\n"
    "  --tool NAME=COMMAND        keep one warm process of this tool and serve kind NAME on it\n"
    "                             (docs/protocol.md \"Tool link\"; repeatable)\n"
    "  --zygote NAME=ADDRESS      fork tool NAME from the zygote listening at ADDRESS (a Unix\n"
    "                             socket; '@' starts an abstract name), or start it from scratch\n"
    "                             when that zygote does not answer (docs/protocol.md \"Zygote\n"
    "                             link\"; repeatable)\n"
    "  --enable-selftest          serve the `selftest` kind (fault injection for tests)\n"
    "  --log-level LEVEL          trace, debug, info, warn, error, critical or off (default:\n"
    "                             SPDLOG_LEVEL, else info)\n";

enum Flag : int {
  kParent = 256,
  kReadFd,
  kWriteFd,
  kMaxFrame,
  kGraceMs,
  kTool,
  kZygote,
  kSelftest,
  kLogLevel,
  kVersion,
};

constexpr option kOptions[] = {
    {"help", no_argument, nullptr, 'h'},
    {"version", no_argument, nullptr, kVersion},
    {"parent", required_argument, nullptr, kParent},
    {"read-fd", required_argument, nullptr, kReadFd},
    {"write-fd", required_argument, nullptr, kWriteFd},
    {"max-frame", required_argument, nullptr, kMaxFrame},
    {"grace-ms", required_argument, nullptr, kGraceMs},
    {"tool", required_argument, nullptr, kTool},
    {"zygote", required_argument, nullptr, kZygote},
    {"enable-selftest", no_argument, nullptr, kSelftest},
    {"log-level", required_argument, nullptr, kLogLevel},
    {nullptr, 0, nullptr, 0},
};

int usage_error(const std::string& message) {
  std::fprintf(stderr, "kiln-worker: %s\nRun with --help for more information.\n", message.c_str());
  return kiln::exit_code::kUsage;
}

// Stores one option's value, or says what is wrong with it.
kiln::Expected<void> take(int flag, const char* name, const char* arg, kiln::worker::Options& o) {
  std::optional<uint64_t> n;
  switch (flag) {
    case kParent:
      if (!(n = kiln::parse_unsigned(arg, 10, 1, INT32_MAX))) break;
      o.parent = static_cast<pid_t>(*n);
      return {};
    case kReadFd:
    case kWriteFd:
      if (!(n = kiln::parse_unsigned(arg, 10, 0, INT32_MAX))) break;
      (flag == kReadFd ? o.read_fd : o.write_fd) = static_cast<int>(*n);
      return {};
    case kMaxFrame:
      if (!(n = kiln::parse_unsigned(arg, 10, 1, UINT32_MAX))) break;
      o.max_frame = static_cast<uint32_t>(*n);
      return {};
    case kGraceMs:
      if (!(n = kiln::parse_unsigned(arg, 10, 0, UINT32_MAX))) break;
      o.grace_ms = static_cast<uint32_t>(*n);
      return {};
    case kTool:
      o.tools.emplace_back(arg);
      return {};
    case kZygote:
      if (std::strchr(arg, '=') == nullptr) return kiln::fail("--zygote: expected NAME=ADDRESS");
      o.zygotes.emplace_back(arg);
      return {};
    case kLogLevel:
      if (!kiln::valid_log_level(arg))
        return kiln::fail("unknown log level '" + std::string(arg) + "'");
      o.log_level = arg;
      return {};
  }
  return kiln::fail(std::string("--") + name + ": '" + arg + "' is out of range or not a number");
}

// nullopt when the worker should start; else the status to exit with.
std::optional<int> parse(int argc, char** argv, kiln::worker::Options& o) {
  bool parent = false, read_fd = false, write_fd = false;
  int index = 0;
  for (int flag; (flag = ::getopt_long(argc, argv, "h", kOptions, &index)) != -1;) {
    if (flag == 'h') {
      const kiln::worker::Options defaults;
      std::printf(kHelp, defaults.max_frame, defaults.grace_ms);
      return kiln::exit_code::kOk;
    }
    if (flag == kVersion) {
      std::printf("kiln-worker %.*s\n", static_cast<int>(kiln::kVersion.size()),
                  kiln::kVersion.data());
      return kiln::exit_code::kOk;
    }
    if (flag == kSelftest) {
      o.enable_selftest = true;
      continue;
    }
    if (flag == '?') return usage_error("bad command line");  // getopt_long said what
    if (kiln::Expected<void> taken = take(flag, kOptions[index].name, optarg, o); !taken) {
      return usage_error(taken.error());
    }
    parent |= flag == kParent;
    read_fd |= flag == kReadFd;
    write_fd |= flag == kWriteFd;
  }
  if (optind < argc) return usage_error(std::string("unexpected argument '") + argv[optind] + "'");
  if (!parent || !read_fd || !write_fd) {
    return usage_error("--parent, --read-fd and --write-fd are required");
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  kiln::worker::Options options;
  if (std::optional<int> status = parse(argc, argv, options)) return *status;
  // Kiln's own, not the commands': taken out of the environment.
  if (const char* host = std::getenv("KILN_DISTCC_HOST")) options.distcc_host = host;
  if (const char* client = std::getenv("KILN_DISTCC")) options.distcc_client = client;
  ::unsetenv("KILN_DISTCC_HOST");
  ::unsetenv("KILN_DISTCC");
  const int status = kiln::worker::run(options);
  kiln::worker::finish_or_wait();
  return status;
}
