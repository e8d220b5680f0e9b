// Idle memory of kiln-worker: starts N workers the way the supervisor does (link at fds 3/4,
// KILN_KEY set, this process as --parent), waits for each `ready`, and prints their RSS, its
// anonymous and file-backed parts, and PSS (shared library pages divided among the processes
// that map them: the memory one more worker really costs).
//   worker_idle_rss [--quick] [--workers N] [--worker PATH]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "common/fd.h"

namespace {

using Worker = kiln::bench::LinkedChild;

Worker start(const std::string& path) {
  return kiln::bench::spawn_linked(
      {path, "--parent", std::to_string(::getpid()), "--read-fd", "3", "--write-fd", "4"});
}

bool await_ready(const Worker& w) {
  unsigned char header[4];
  if (::read(w.from.get(), header, 4) != 4) return false;
  std::vector<char> body((header[0] << 24) | (header[1] << 16) | (header[2] << 8) | header[3]);
  std::size_t got = 0;
  while (got < body.size()) {
    const ssize_t n = ::read(w.from.get(), body.data() + got, body.size() - got);
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

unsigned long median(std::vector<unsigned long> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int workers = 8;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0)
      workers = 2;
    else if (std::strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
      workers = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--worker") == 0 && i + 1 < argc)
      path = argv[++i];
    else {
      std::fprintf(stderr, "usage: worker_idle_rss [--quick] [--workers N] [--worker PATH]\n");
      return 2;
    }
  }
  if (path.empty()) path = kiln::beside_self("kiln-worker");
  std::vector<Worker> pool;
  for (int i = 0; i < workers; ++i) pool.push_back(start(path));
  std::vector<unsigned long> rss, anon, file, pss;
  for (const Worker& w : pool) {
    if (!await_ready(w)) {
      std::fprintf(stderr, "worker_idle_rss: worker %d did not say ready\n", w.pid);
      return 1;
    }
  }
  for (const Worker& w : pool) {
    rss.push_back(kiln::proc_kb(w.pid, "status", "VmRSS"));
    anon.push_back(kiln::proc_kb(w.pid, "status", "RssAnon"));
    file.push_back(kiln::proc_kb(w.pid, "status", "RssFile"));
    pss.push_back(kiln::proc_kb(w.pid, "smaps_rollup", "Pss"));
  }
  for (Worker& w : pool) w.to.reset();  // end of input: the worker exits 0
  int failures = 0;
  for (const Worker& w : pool) {
    int status = 0;
    ::waitpid(w.pid, &status, 0);
    failures += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::printf(
      "idle kiln-worker, median of %d: VmRSS %lu KiB (anonymous %lu KiB, file-backed %lu KiB), "
      "PSS %lu KiB\n",
      workers, median(rss), median(anon), median(file), median(pss));
  using kiln::bench::row, kiln::bench::show_kib, kiln::bench::show_ratio;
  const double ppe = kiln::bench::python_figures({"worker-rss"}).at(0);
  const double kiln_rss = static_cast<double>(median(rss));
  row("idle RSS of one worker (VmRSS)", show_kib(kiln_rss),
      "ProcessPoolExecutor worker " + show_kib(ppe), show_ratio(ppe / kiln_rss) + " smaller",
      "<= 2 MiB", kiln_rss <= 2048);
  row("of that, the worker's own (anonymous) memory", show_kib(static_cast<double>(median(anon))),
      "-", "-", "-", std::nullopt);
  row("idle PSS of one worker among " + std::to_string(workers) +
          " (shared library pages divided among them)",
      show_kib(static_cast<double>(median(pss))), "-", "-", "-", std::nullopt);
  return failures == 0 ? 0 : 1;
}
