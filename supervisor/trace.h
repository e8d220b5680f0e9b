// A timeline of a pool (kiln-supervisor --trace FILE): a Chrome Trace Event file, the JSON array
// form that Perfetto (ui.perfetto.dev) and chrome://tracing open. One lane (tid) per worker slot (a
// distcc host's slots named after it); a span per job that ran, named by job_name() (its source
// file, else its command, else its kind), with its queue and run time, client, id and outcome in
// its args; a mark where a worker started, was ready, crashed or ended; and the queue length,
// running jobs and live workers as counters. Events are written as they happen and flushed each
// time, so a supervisor that is killed leaves a file the viewers still open (the format lets the
// closing bracket be missing); a clean end closes the array. The file is capped
// (--trace-max-mb): at the cap a last mark says so, the array is closed and nothing more is
// written.
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.h"
#include "common/result.h"
#include "supervisor/job_queue.h"

namespace kiln::supervisor {

class Trace {
 public:
  // Creates a new file private to this user in `path`'s directory and renames it to `path`:
  // never opens what is there, so that a FIFO cannot block the loop nor a device or a file such as
  // /proc/self/comm be written. Refused: a name with a NUL, and a `path` that exists and is not a
  // regular file. A lane per slot named `lanes[slot]` ("worker slot 0", "host h1:3632 slot 2");
  // `now` is time 0 of the timeline; at most `max_bytes` are written (0: no cap).
  static Expected<std::unique_ptr<Trace>> open(const std::string& path,
                                               const std::vector<std::string>& lanes, Micros now,
                                               uint64_t max_bytes = 0);
  ~Trace();
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;

  // A mark on the slot's lane: "worker started (pid N)", "ready", "crashed: ...".
  void worker(std::size_t slot, pid_t pid, std::string_view what, Micros at);
  // The job's span on the lane of the slot that ran it (none: it never ran), then the counters.
  void job(const PoolJob& job, const proto::Result& result, std::optional<std::size_t> slot,
           const PoolLoad& load, Micros at);

 private:
  Trace(std::FILE* file, Micros base, uint64_t max_bytes)
      : file_(file), base_(base), max_bytes_(max_bytes) {}
  void emit(const std::string& event);
  // The mark that ends a capped timeline.
  std::string capped_mark() const;

  std::FILE* file_;
  Micros base_;
  uint64_t max_bytes_;
  uint64_t written_ = 0;
  Micros last_ts_ = 0;   // of the latest event, for the mark at the cap
  bool capped_ = false;  // the cap was reached: nothing more is written
  bool first_ = true;
};

}  // namespace kiln::supervisor
