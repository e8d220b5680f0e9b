// What the benchmark programs share: timing and summaries, one row format for RESULTS.md, a
// kiln-supervisor on a raw pipe pair (so the benchmark's own client adds nothing a relay's
// client would not), and the Python comparisons.
//
// Every program prints rows of RESULTS.md's table ("| figure | Kiln | comparison | ratio |
// target | met |") and, for the log, lines of detail that do not start with "|".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "common/frame.h"
#include "common/protocol.h"

namespace kiln::bench {

using Clock = std::chrono::steady_clock;

inline double micros_since(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

// Median and spread of one figure over several rounds (or samples).
struct Summary {
  double median = 0, p99 = 0, min = 0, max = 0;
};
Summary summarize(std::vector<double> samples);

// "48.2 us (45.0-51.3)": a median with the range of the rounds behind it.
std::string show_us(const Summary& s);
std::string show_ms(const Summary& s);
std::string show_rate(const Summary& s);  // jobs/s
std::string show_kib(double kib);

// One row of the results table. `ratio` is Kiln over the comparison as the target states it
// (a time ratio, or a speed-up); `met` says whether the target holds.
// Without a target, `met` is nullopt and the row says so.
void row(const std::string& figure, const std::string& kiln, const std::string& comparison,
         const std::string& ratio, const std::string& target, std::optional<bool> met);
std::string show_ratio(double r);

// The options every bench program takes: --quick (one small round, for ctest), --rounds N,
// --label TEXT (added to each figure's name: "one CPU" for a run under taskset).
struct Options {
  bool quick = false;
  int rounds = 5;
  std::string label;
  // "name (label)" when a label is set.
  std::string figure(const std::string& name) const {
    return label.empty() ? name : name + " (" + label + ")";
  }
};
Options parse_options(int argc, char** argv, const char* usage);

// A link to a child process the way Kiln's binaries take one: our ends of two close-on-exec
// pipes, the child's at its fds 3 (reads) and 4 (writes), KILN_KEY set to the benchmarks' key.
struct LinkedChild {
  pid_t pid = -1;
  UniqueFd to, from;
};
LinkedChild spawn_linked(const std::vector<std::string>& argv);

// A kiln-supervisor of our own with its client link on a pipe pair, spoken to in raw frames.
class Supervisor {
 public:
  explicit Supervisor(const std::vector<std::string>& args);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor();  // closes both ends of the link (shutdown without drain) and reaps it

  pid_t pid() const { return pid_; }
  int write_fd() const { return to_.get(); }
  const proto::Hello& hello() const { return hello_; }

  void send(const std::string& frame);
  // An encoded submit of a job with the next unused id.
  std::string submit_frame(const std::string& kind, const std::string& payload_msgpack);
  // Submits n such jobs at once (written from a second thread while this one reads) and waits
  // for their n results; the time that took in microseconds. Exits if a job fails.
  double burst(const std::string& kind, const std::string& payload_msgpack, int n);
  // The next message; exits the program with a message if the link ends or breaks.
  proto::ClientEvent next();
  proto::Result next_result();
  proto::Stats stats();
  // Waits until `count` workers are idle and none has a pid in `not_pids`, asking for stats
  // every 0.2 ms.
  void await_idle_workers(std::size_t count, const std::vector<uint64_t>& not_pids = {});
  // Kills it with SIGKILL and reaps it.
  void kill();

 private:
  pid_t pid_ = -1;
  UniqueFd to_, from_;
  FrameInbox inbox_;
  proto::Hello hello_;
  uint64_t next_id_ = 1;
};

// msgpack of a bin of n bytes, and of a map {action: "sleep", ms: N} for selftest. (An exec
// payload: kiln::client::exec_payload.)
std::string bin_payload(std::size_t n);
std::string sleep_payload(uint64_t ms);

// Runs a command (argv[0] found on PATH) to completion with stdout and stderr to /dev/null;
// its wall time in microseconds, or exits the program if it fails.
double time_command(const std::vector<std::string>& argv, const std::string& cwd = "");

// Runs bench/ppe_bench.py (Python's ProcessPoolExecutor) with these arguments and returns the
// numbers it prints on its last line.
std::vector<double> python_figures(const std::vector<std::string>& args);

// Writes all of `data` to fd (blocking); exits the program on error.
void write_all(int fd, std::string_view data);

[[noreturn]] void die(const std::string& why);

}  // namespace kiln::bench
