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

}  // namespace

int run_jobs(const RunOptions& options) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (options.input != "-") {
    file.open(options.input);
    if (!file) {
      std::fprintf(stderr, "kiln run: cannot read %s\n", options.input.c_str());
      return 2;
    }
    in = &file;
  }
  Expected<std::unique_ptr<Pool>> pool = Pool::open(options.pool);
  if (!pool) {
    std::fprintf(stderr, "kiln run: %s\n", pool.error().c_str());
    return 2;
  }

  std::mutex mu;
  std::condition_variable cv;
  std::map<std::size_t, std::pair<std::string, proto::Result>> done;  // by line
  // Declared after what its callbacks use, so that it is destroyed (waiting for them) first.
  std::optional<SubmitWindow> window;
  window.emplace(**pool);
  bool all_ok = true;
  std::vector<std::size_t> order;  // the lines submitted, in input order
  std::size_t line_no = 0;
  std::string line;
  while (std::getline(*in, line)) {
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
    window->submit(job->kind, std::move(job->payload), job->timeout_ms, job->priority,
                   [&, n = line_no, kind](proto::Result r) {
                     std::lock_guard lock(mu);
                     done.emplace(n, std::make_pair(kind, std::move(r)));
                     cv.notify_all();
                   });
  }

  std::size_t printed = 0;
  std::unique_lock lock(mu);
  while (printed < order.size()) {
    // The next result to print: any (as they finish), or that of the next line (--ordered).
    cv.wait(lock,
            [&] { return options.ordered ? done.count(order[printed]) != 0 : !done.empty(); });
    for (;;) {
      // As they finish, or (--ordered) only the next line in input order.
      auto it = options.ordered ? done.find(order[printed]) : done.begin();
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
  lock.unlock();
  window.reset();
  (*pool)->close();
  return all_ok ? 0 : 1;
}

}  // namespace kiln::client
