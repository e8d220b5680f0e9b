// `kiln run`: jobs as JSON lines, results as JSON lines.
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>

#include "client/commands.h"
#include "client/json_msgpack.h"
#include "client/parsers.h"
#include "client/submit_window.h"
#include "common/exit_codes.h"

namespace kiln::client {
namespace {

using nlohmann::json;

bool succeeded(const proto::Result& r, const std::string& kind, const json& value) {
  if (!r.ok) return false;
  return kind != "exec" || (value.is_object() && value.value("exit_code", 0) == 0);
}

// The JSON line printed for one result.
json result_line(std::size_t line, const proto::Result& r, const json& value) {
  json out = {{"line", line}, {"ok", r.ok}};
  if (r.value) out["value"] = value;
  if (r.error) {
    out["error"] = {{"code", r.error->code}, {"message", r.error->message}};
    if (r.error->detail) out["error"]["detail"] = *r.error->detail;
  }
  if (r.worker_pid) out["worker_pid"] = *r.worker_pid;
  out["queue_us"] = r.queue_us;
  out["run_us"] = r.run_us;
  return out;
}

// The results the pool's callbacks hand the printing loop, by input line, with their job's kind.
struct Finished {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::size_t, std::pair<std::string, proto::Result>> done;
};

// Submits a job per line of `in` (blank lines skipped); a line that is no job is reported on
// stderr by its number. Returns the lines submitted, in input order; `all_ok` false if any was
// bad.
std::vector<std::size_t> submit_lines(std::istream& in, SubmitWindow& window, Finished& finished,
                                      bool& all_ok) {
  std::vector<std::size_t> order;
  std::size_t line_no = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Expected<JobLine> job = parse_job_line(line);
    if (!job) {
      std::fprintf(stderr, "kiln run: line %zu: %s\n", line_no, job.error().c_str());
      all_ok = false;
      continue;
    }
    order.push_back(line_no);
    const std::string kind = job->kind;
    window.submit(job->kind, std::move(job->payload), job->timeout_ms, job->priority,
                  [&finished, n = line_no, kind](proto::Result r) {
                    std::lock_guard lock(finished.mu);
                    finished.done.emplace(n, std::make_pair(kind, std::move(r)));
                    finished.cv.notify_all();
                  });
  }
  return order;
}

// Prints a JSON line per result, as they finish or (`ordered`) in input order; false if any job
// did not succeed.
bool print_results(bool ordered, const std::vector<std::size_t>& order, Finished& finished) {
  bool all_ok = true;
  std::size_t printed = 0;
  std::unique_lock lock(finished.mu);
  auto& done = finished.done;
  while (printed < order.size()) {
    finished.cv.wait(lock,
                     [&] { return ordered ? done.count(order[printed]) != 0 : !done.empty(); });
    for (;;) {
      // As they finish, or (ordered) only the next line in input order.
      auto it = ordered ? done.find(order[printed]) : done.begin();
      if (it == done.end()) break;
      auto [n, entry] = std::move(*it);
      done.erase(it);
      auto& [kind, r] = entry;
      const json value = r.value ? to_json(*r.value) : json();
      all_ok = all_ok && succeeded(r, kind, value);
      std::printf("%s\n", json_text(result_line(n, r, value)).c_str());
      if (++printed == order.size()) break;
    }
    std::fflush(stdout);
  }
  return all_ok;
}

}  // namespace

int run_jobs(const RunOptions& options) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (options.input != "-") {
    file.open(options.input);
    if (!file) {
      std::fprintf(stderr, "kiln run: cannot read %s\n", options.input.c_str());
      return exit_code::kUsage;
    }
    in = &file;
  }
  Expected<std::unique_ptr<Pool>> pool = Pool::open(options.pool);
  if (!pool) {
    std::fprintf(stderr, "kiln run: %s\n", pool.error().c_str());
    return exit_code::kUsage;
  }
  Finished finished;
  // Declared after what its callbacks use, so that it is destroyed (waiting for them) first.
  std::optional<SubmitWindow> window;
  window.emplace(**pool);
  bool all_ok = true;
  const std::vector<std::size_t> order = submit_lines(*in, *window, finished, all_ok);
  all_ok = print_results(options.ordered, order, finished) && all_ok;
  window.reset();
  (*pool)->close();
  return all_ok ? exit_code::kOk : exit_code::kJobsFailed;
}

}  // namespace kiln::client
