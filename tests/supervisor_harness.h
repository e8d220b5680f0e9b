// Starts a real kiln-supervisor with a socketpair as its client link (fd 3) and speaks the
// client protocol to it through common/'s types.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "tests/process.h"

namespace kiln::testing {

struct SupervisorStart {
  std::vector<std::string> args;  // besides --read-fd/--write-fd
  std::vector<std::string> env;
  bool selftest = true;
  int workers = 2;
  int grace_ms = 300;
};

class SupervisorHarness {
 public:
  explicit SupervisorHarness(const SupervisorStart& start = {});
  ~SupervisorHarness();

  bool await_hello(std::chrono::milliseconds timeout = 10s);
  const proto::Hello& hello() const { return hello_; }

  bool submit(uint64_t id, const std::string& kind, const nlohmann::json& payload,
              std::optional<uint64_t> timeout_ms = std::nullopt,
              std::optional<int64_t> priority = std::nullopt);
  template <class M>
  bool send(const M& m) {
    return link_.send(m);
  }
  // The next message from the supervisor; results are also filed by id.
  std::optional<proto::ClientEvent> next_event(std::chrono::milliseconds timeout = 30s);
  // Reads until the result of `id` (or the timeout); other results are kept for later.
  std::optional<proto::Result> result(uint64_t id, std::chrono::milliseconds timeout = 30s);
  std::optional<proto::Stats> stats(std::chrono::milliseconds timeout = 10s);
  // Reads until `bye` or the end of the link; true if bye came.
  bool await_bye(std::chrono::milliseconds timeout = 30s);

  Child& process() { return child_; }
  FrameChannel& link() { return link_; }
  // What the supervisor has written to stderr so far.
  std::string stderr_text();
  // Statuses, starts and errors seen so far.
  std::vector<proto::Status> statuses;
  std::vector<proto::Started> started;
  std::vector<proto::Error> errors;
  std::map<uint64_t, int> result_counts;  // how many results arrived for each id

 private:
  Child child_;
  FrameChannel link_;
  std::string stderr_path_;
  proto::Hello hello_;
  std::map<uint64_t, proto::Result> results_;
  std::vector<proto::Stats> stats_;
  bool bye_ = false;
};

// Pids of the live children of a process, or of its zombie children.
std::vector<pid_t> children_of(pid_t pid, bool zombies = false);
// Every live process below `pid`, children first (orphans handed to a subreaper stay below it).
std::vector<pid_t> descendants_of(pid_t pid);

}  // namespace kiln::testing
