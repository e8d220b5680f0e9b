// kiln-exec: the compiler launcher of a build, `kiln exec` in a binary of its own that starts in
// a fraction of a millisecond (no option parser, no threads, linked statically). It takes no
// options of its own, so nothing of the command can be mistaken for one: everything after it
// (after `--`, if given) is the command.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "client/launcher.h"
#include "common/exit_codes.h"
#include "common/version.h"

namespace {

constexpr const char* kHelp =
    "Usage: kiln-exec [--] COMMAND [ARG...]\n"
    "\n"
    "Run one command through the shared Kiln daemon, exactly as if it were run directly: in this\n"
    "directory, with this environment, umask, nice value and resource limits; its stdout and\n"
    "stderr relayed in full; its exit status returned (128+N when killed by signal N, 127 when\n"
    "it is not found, 126 when it cannot be executed). Meant as a build's compiler launcher:\n"
    "\n"
    "  cmake -DCMAKE_C_COMPILER_LAUNCHER=kiln-exec -DCMAKE_CXX_COMPILER_LAUNCHER=kiln-exec ...\n"
    "\n"
    "A daemon (kiln-supervisor --listen) is started when none listens, and exits after 5\n"
    "minutes idle. Whenever the daemon cannot serve the command (it cannot be started or\n"
    "reached, does not answer in time, is shutting down, overloaded or unavailable, or dies\n"
    "mid-job; stdin is a pipe, a socket, a file or a device other than /dev/null; the directory\n"
    "is too long for a job) the command runs here instead, and one line on stderr says why.\n"
    "A command whose output passed what a job may return (16 MiB a stream) is not run again:\n"
    "that exits 125. `kiln exec -- COMMAND` is the same.\n"
    "\n"
    "Environment:\n"
    "  KILN_SOCKET      the daemon's socket (default $XDG_RUNTIME_DIR/kiln/supervisor.sock,\n"
    "                   else /tmp/kiln-$UID/supervisor.sock)\n"
    "  KILN_WORKERS     the pool size of a daemon started here (default: the CPU count)\n"
    "  KILN_SUPERVISOR  the kiln-supervisor to start (default: the one beside kiln-exec)\n"
    "  KILN_KEY         the build key (base64): only a daemon serving it is used\n"
    "  KILN_FALLBACK=0  exit 125 instead of running the command here\n"
    "  KILN_CONNECT_TIMEOUT_MS  how long the daemon may take to accept and say hello\n"
    "                   (default 10000)\n"
    "\n"
    "Options (only as the first argument):\n"
    "  -h, --help       print this and exit\n"
    "  --version        print the version and exit\n";

}  // namespace

int main(int argc, char** argv) {
  int first = 1;
  if (argc > 1) {
    const std::string_view a = argv[1];
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      return kiln::exit_code::kOk;
    }
    if (a == "--version") {
      std::printf("kiln-exec %s\n", std::string(kiln::kVersion).c_str());
      return kiln::exit_code::kOk;
    }
    if (a == "--") {
      first = 2;
    } else if (a.starts_with("-")) {
      std::fprintf(stderr,
                   "kiln-exec: unknown option '%s': the command comes first "
                   "(kiln-exec [--] COMMAND [ARG...]; --help says more)\n",
                   argv[1]);
      return kiln::exit_code::kUsage;
    }
  }
  if (first >= argc) {
    std::fputs("kiln-exec: no command given (kiln-exec [--] COMMAND [ARG...])\n", stderr);
    return kiln::exit_code::kUsage;
  }
  return kiln::client::exec_command({std::vector<std::string>(argv + first, argv + argc), "", ""});
}
