// Starts a real kiln-worker with this test process as its parent: links at fds 3 and 4, stderr
// piped back, KILN_KEY set; and runs jobs on it.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "tests/process.h"

namespace kiln::testing {

inline const std::string kTestKey = "kiln";  // base64 a2lsbg==, key_id eac7579295a99dff

struct WorkerStart {
  std::string path = KILN_WORKER_PATH;  // the kiln-worker binary
  std::vector<std::string> wrapper;     // a command that execs it in place (prlimit ...)
  std::vector<std::string> extra_args;  // after the required ones
  std::vector<std::string> env;         // extra environment entries
  std::optional<pid_t> parent;          // default: this process
  bool selftest = true;
  std::vector<std::pair<int, int>> extra_fds;  // more {child fd, our fd} to hand over
};

class WorkerHarness {
 public:
  explicit WorkerHarness(const WorkerStart& start = {});

  // Reads `ready`; false (with a gtest failure) if something else came.
  bool await_ready(std::chrono::milliseconds timeout = 10s);
  const proto::Ready& ready() const { return ready_; }

  // Sends a job and reads until its result; phases seen on the way are kept.
  std::optional<proto::WorkerResult> run(const std::string& kind, const nlohmann::json& payload,
                                         uint64_t timeout_ms = 0,
                                         std::chrono::milliseconds wait = 30s);
  std::optional<proto::WorkerResult> run_raw(const std::string& kind,
                                             const proto::RawObject& payload,
                                             uint64_t timeout_ms = 0,
                                             std::chrono::milliseconds wait = 30s);
  const std::vector<proto::Phase>& phases() const { return phases_; }

  // Sends a job without waiting.
  bool submit(uint64_t id, const std::string& kind, const nlohmann::json& payload,
              uint64_t timeout_ms = 0);
  // The next message from the worker.
  std::optional<proto::WorkerEvent> next_event(std::chrono::milliseconds timeout);

  Child& process() { return child_; }
  FrameChannel& link() { return link_; }
  // Everything the worker wrote to stderr, once it has exited (reads to end of file).
  std::string stderr_text(std::chrono::milliseconds timeout = 10s);

 private:
  Child child_;
  FrameChannel link_;
  UniqueFd stderr_;
  proto::Ready ready_;
  std::vector<proto::Phase> phases_;
  uint64_t next_id_ = 1;
};

proto::RawObject to_raw(const nlohmann::json& value);
nlohmann::json from_raw(const proto::RawObject& value);

// Frames of a pipe pair, ours and the child's: {child_read, our_write}, {our_read, child_write}.
struct LinkPipes {
  UniqueFd child_read, our_write, our_read, child_write;
};
LinkPipes link_pipes();

}  // namespace kiln::testing
