// 2,000 `/bin/true` commands: as Kiln exec jobs on 2 workers, by `xargs -P2`, and by a C loop of
// posix_spawn + waitpid on two threads (the floor: what starting a process costs here).
#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench.h"
#include "client/pool.h"

extern char** environ;

namespace kiln::bench {
namespace {

double spawn_loop(int commands) {
  const auto start = Clock::now();
  auto run = [](int n) {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    for (int i = 0; i < n; ++i) {
      pid_t pid;
      if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv, environ) != 0)
        die("posix_spawn failed");
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
  };
  std::thread a(run, commands / 2), b(run, commands - commands / 2);
  a.join();
  b.join();
  return micros_since(start);
}

}  // namespace
}  // namespace kiln::bench

int main(int argc, char** argv) {
  using namespace kiln::bench;
  const Options o = parse_options(argc, argv, "exec /bin/true: Kiln, xargs -P2, posix_spawn");
  const int commands = o.quick ? 200 : 2000;
  std::vector<double> kiln, xargs, spawn;
  Supervisor sup({"--workers", "2"});
  sup.await_idle_workers(2);
  kiln::client::ExecRequest true_command;
  true_command.argv = {"/bin/true"};
  const std::string payload = kiln::client::exec_payload(true_command).bytes;
  sup.burst("exec", payload, 100);  // warm up
  const std::string xargs_cmd = "seq " + std::to_string(commands) + " | xargs -P2 -n1 /bin/true";
  for (int round = 0; round < o.rounds; ++round) {
    spawn.push_back(spawn_loop(commands));
    kiln.push_back(sup.burst("exec", payload, commands));
    xargs.push_back(time_command({"sh", "-c", xargs_cmd}));
    std::printf("round %d: posix_spawn %.0f ms, kiln %.0f ms, xargs %.0f ms\n", round + 1,
                spawn.back() / 1000, kiln.back() / 1000, xargs.back() / 1000);
  }
  const Summary k = summarize(kiln), x = summarize(xargs), s = summarize(spawn);
  const std::string name = "exec /bin/true, " + std::to_string(commands) + " jobs, 2 workers";
  row(o.figure(name), show_ms(k), "posix_spawn loop on 2 threads " + show_ms(s),
      show_ratio(k.median / s.median), "<= 1.10x posix_spawn", k.median / s.median <= 1.10);
  row(o.figure(name + ", against xargs -P2"), show_ms(k), "xargs -P2 " + show_ms(x),
      show_ratio(k.median / x.median), "-", std::nullopt);
  return 0;
}
