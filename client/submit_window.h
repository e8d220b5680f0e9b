// SubmitWindow: how `kiln run` and `kiln compile-db` hand a pool more jobs than its queue holds.
// At most `window` jobs are unanswered at a time (submit() blocks for room), and a job answered
// `overloaded` (a full queue, or a daemon crowded by other builds) is submitted again, when one of
// ours finishes or, with none of ours in flight, after a back-off: no job is failed for want of
// room. Every other answer goes to the job's callback, on the pool's reader thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "client/pool.h"

namespace kiln::client {

class SubmitWindow {
 public:
  explicit SubmitWindow(Pool& pool, std::size_t window = 1024);
  // Waits until every job submitted has had its answer.
  ~SubmitWindow();
  SubmitWindow(const SubmitWindow&) = delete;
  SubmitWindow& operator=(const SubmitWindow&) = delete;

  // on_status: as Pool::submit's, for each status of the job (of each submit, when resubmitted).
  void submit(std::string kind, proto::RawObject payload, std::optional<uint64_t> timeout_ms,
              std::optional<int64_t> priority, Pool::Callback on_result,
              Pool::StatusCallback on_status = nullptr);

 private:
  struct Job {
    std::string kind;
    proto::RawObject payload;
    std::optional<uint64_t> timeout_ms;
    std::optional<int64_t> priority;
    Pool::Callback on_result;
    Pool::StatusCallback on_status;
  };
  void send(std::shared_ptr<Job> job);  // without mu_ held; sent_ already counts it
  void resubmit_loop();

  Pool& pool_;
  const std::size_t window_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t in_flight_ = 0;  // submitted (or waiting to be again), not yet answered for good
  std::size_t sent_ = 0;       // submitted and not yet answered
  std::deque<std::shared_ptr<Job>> overloaded_;
  bool stopping_ = false;
  std::thread resubmitter_;
};

}  // namespace kiln::client
