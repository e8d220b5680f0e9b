// `kiln compile-db`: every entry of a compile_commands.json through the pool.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "client/commands.h"
#include "client/parsers.h"
#include "client/submit_window.h"
#include "common/build_key.h"
#include "common/exit_codes.h"
#include "common/text.h"

namespace kiln::client {
namespace {

using Clock = std::chrono::steady_clock;

Expected<CompileDb> load(const std::string& path, const std::string& filter) {
  std::ifstream in(path);
  if (!in) return fail("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_compile_db(text.str(), path, filter);
}

// One output stream of a compile: itself when it is UTF-8 text, else said so, its bytes in base64.
std::string text_of(const proto::Bytes& stream, const char* name) {
  if (is_valid_utf8(stream.bytes)) return stream.bytes;
  return "(" + std::string(name) + " is not text: base64 " + base64_encode(stream.bytes) + ")\n";
}

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// What one finished entry prints: "" for a clean compile, else its diagnostics as one block (like
// ninja's), named by the entry's label. Counts failures and the compiles' own wall time.
std::string report(const CompileEntry& e, const proto::Result& r, std::size_t& failed,
                   uint64_t& compile_us) {
  if (!r.ok) {
    ++failed;
    return "FAILED: " + e.label() + "\n" + join(e.argv) + "\n" + r.error->code + ": " +
           r.error->message + "\n" + r.error->detail.value_or("");
  }
  const Expected<proto::ExecValue> v = proto::decode_exec_value(*r.value);
  if (!v) {
    ++failed;
    return "FAILED: " + e.label() + "\n" + join(e.argv) + "\n" + v.error() + "\n";
  }
  compile_us += v->wall_us;
  const std::string output = text_of(v->stdout_data, "stdout") + text_of(v->stderr_data, "stderr");
  if (v->exit_code != 0) {
    ++failed;
    return "FAILED: " + e.label() + "\n" + join(e.argv) + "\n" + output;
  }
  return output.empty() ? "" : e.label() + ":\n" + output;
}

// The progress line: entries done, failures, rate, ETA, and when a compile has been running for
// a status interval or more (kiln-supervisor --status-interval-ms, 10 s by default), the file
// that has run longest. On a terminal it is redrawn in place; with --progress elsewhere, each
// update is a line of its own.
class Progress {
 public:
  Progress(const std::vector<CompileEntry>& entries, bool in_place)
      : entries_(entries), in_place_(in_place) {}

  void still_running(std::size_t entry, uint64_t elapsed_ms) { running_[entry] = elapsed_ms; }
  void finished(std::size_t entry) {
    running_.erase(entry);
    ++finished_;
  }
  std::size_t count() const { return finished_; }
  // Takes the line off the terminal before other output.
  void clear() const {
    if (in_place_) std::fprintf(stderr, "\r\x1b[K");
  }
  void print(std::size_t failed) const {
    const double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    const double rate = secs > 0 ? static_cast<double>(finished_) / secs : 0;
    const double eta = rate > 0 ? static_cast<double>(entries_.size() - finished_) / rate : 0;
    std::string slowest;
    const auto longest = std::max_element(running_.begin(), running_.end(),
                                          [](auto& a, auto& b) { return a.second < b.second; });
    if (longest != running_.end()) {
      char secs_text[32];
      std::snprintf(secs_text, sizeof secs_text, " (%.1f s)",
                    static_cast<double>(longest->second) / 1000);
      slowest = ", slowest: " + entries_[longest->first].label() + secs_text;
    }
    clear();
    std::fprintf(stderr, "[%zu/%zu] %zu failed, %.1f jobs/s, ETA %.0f s%s%s", finished_,
                 entries_.size(), failed, rate, eta, slowest.c_str(), in_place_ ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  const std::vector<CompileEntry>& entries_;
  const bool in_place_;
  const Clock::time_point start_ = Clock::now();
  std::size_t finished_ = 0;
  std::map<std::size_t, uint64_t> running_;  // entry -> its run time at its last status
};

// The speed-up is the compiles' own times summed, over the wall time they took together: what
// the pool did against one worker doing the same compiles back to back.
void print_summary(Pool& pool, std::size_t total, std::size_t failed, double wall,
                   uint64_t compile_us) {
  const double compile = static_cast<double>(compile_us) / 1e6;
  const uint64_t workers = pool.hello().workers;
  std::printf("kiln compile-db: %zu succeeded, %zu failed, on %llu worker%s\n", total - failed,
              failed, static_cast<unsigned long long>(workers), workers == 1 ? "" : "s");
  std::printf(
      "  wall time %.2f s; the compiles' own times add up to %.2f s; speed-up %.2fx (summed "
      "compile time / wall time)\n",
      wall, compile, wall > 0 ? compile / wall : 0.0);
  if (Expected<proto::Stats> st = pool.stats()) {
    std::printf(
        "  pool: %llu worker starts, %llu crashes, queue p50 %.1f ms, run p50 %.1f ms, "
        "run p95 %.1f ms\n",
        static_cast<unsigned long long>(st->worker_starts),
        static_cast<unsigned long long>(st->worker_crashes), st->queue_us_p50 / 1e3,
        st->run_us_p50 / 1e3, st->run_us_p95 / 1e3);
  }
}

// What the pool's callbacks hand the reporting loop: the jobs finished, in their order of
// arrival, and whether a status (a job still running) came since the loop last looked.
struct Arrivals {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::size_t, proto::Result>> done;
  bool status_heard = false;
};

// Submits every entry from a thread of its own, so that results are reported while later
// entries wait for room in the window.
std::thread submit_all(SubmitWindow& window, const std::vector<CompileEntry>& entries,
                       Arrivals& arrivals, Progress& progress) {
  return std::thread([&] {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      ExecRequest r;
      r.argv = entries[i].argv;
      r.cwd = entries[i].directory;
      window.submit(
          "exec", exec_payload(r), std::nullopt, std::nullopt,
          [&arrivals, i](proto::Result result) {
            std::lock_guard lock(arrivals.mu);
            arrivals.done.emplace_back(i, std::move(result));
            arrivals.cv.notify_all();
          },
          [&arrivals, &progress, i](const proto::Status& status) {
            std::lock_guard lock(arrivals.mu);
            progress.still_running(i, status.elapsed_ms);
            arrivals.status_heard = true;
            arrivals.cv.notify_all();
          });
    }
  });
}

// Reports each compile as it finishes, with the progress line when `show`: its failures added to
// `failed`; returns the compiles' own times summed.
uint64_t report_all(const std::vector<CompileEntry>& entries, Arrivals& arrivals,
                    Progress& progress, bool show, std::size_t& failed) {
  uint64_t compile_us = 0;
  std::unique_lock lock(arrivals.mu);
  while (progress.count() < entries.size()) {
    arrivals.cv.wait(lock, [&] { return !arrivals.done.empty() || arrivals.status_heard; });
    if (arrivals.done.empty()) {
      arrivals.status_heard = false;
      if (show) progress.print(failed);
      continue;
    }
    auto [i, r] = std::move(arrivals.done.front());
    arrivals.done.pop_front();
    progress.finished(i);
    const std::string block = report(entries[i], r, failed, compile_us);
    progress.clear();
    if (!block.empty()) {
      std::fputs(block.c_str(), stdout);
      if (block.back() != '\n') std::fputc('\n', stdout);
      std::fflush(stdout);
    }
    if (show) progress.print(failed);
  }
  return compile_us;
}

}  // namespace

int compile_db(const CompileDbOptions& options) {
  Expected<CompileDb> db = load(options.database, options.filter);
  if (!db) {
    std::fprintf(stderr, "kiln compile-db: %s\n", db.error().c_str());
    return exit_code::kUsage;
  }
  // An entry that is not one fails alone, reported like a failed compile; the others still run.
  for (const std::string& problem : db->problems) std::printf("FAILED: %s\n", problem.c_str());
  std::fflush(stdout);
  Expected<std::unique_ptr<Pool>> pool = Pool::open(options.pool);
  if (!pool) {
    std::fprintf(stderr, "kiln compile-db: %s\n", pool.error().c_str());
    return exit_code::kUsage;
  }
  const auto start = Clock::now();
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  Progress progress(db->entries, tty);
  Arrivals arrivals;
  std::optional<SubmitWindow> window;
  window.emplace(**pool);
  std::thread submitter = submit_all(*window, db->entries, arrivals, progress);
  std::size_t failed = db->problems.size();
  const uint64_t compile_us =
      report_all(db->entries, arrivals, progress, tty || options.progress, failed);
  submitter.join();
  window.reset();
  progress.clear();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  print_summary(**pool, db->entries.size() + db->problems.size(), failed, wall, compile_us);
  (*pool)->close();
  return failed == 0 ? exit_code::kOk : exit_code::kJobsFailed;
}

}  // namespace kiln::client
