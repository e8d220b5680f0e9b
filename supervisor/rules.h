// The supervisor's own rules, beside the pool's and like them without libuv: what a signal does,
// what the end of a client's link does, when a daemon with nothing to do exits, and whether an
// event comes from a slot's current worker process. Supervisor acts on what they decide;
// tests/rules_test.cc drives them with a fake clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/job_queue.h"

namespace kiln::supervisor {

struct RulesConfig {
  bool socket = false;        // a daemon serving a Unix socket; else one client link (pipes)
  uint64_t idle_exit_ms = 0;  // a daemon with no client and no job exits after this; 0: never
  std::size_t workers = 1;
};

class Rules {
 public:
  using Config = RulesConfig;
  explicit Rules(Config config = {});

  enum class Act {
    kEndOrphans,  // kill and reap what dead workers left behind
    kKillAll,     // SIGKILL every worker now
    kShutDown,    // shut down, answering every open job
    kDropClient,  // cancel that client's jobs; the others go on
  };
  struct Decision {
    Act act;
    std::string why;
  };
  // SIGCHLD ends orphans; the second SIGINT kills the workers at once; any other shuts down.
  Decision on_signal(int signum);
  // The end of the one client link (pipes) is the end of the service; a socket client's end
  // drops that client only.
  Decision on_client_end() const;

  // Told after every event whether the daemon is idle (not shutting down, no open job, every
  // client gone): when its idle exit is due, if it will be.
  std::optional<Micros> idle(bool idle, Micros now);
  // The reason to exit, once an idle exit is due at `now`.
  std::optional<std::string> idle_exit_due(Micros now) const;

  // Each worker process of a slot is a new generation; the events of an older one are stale.
  uint64_t new_generation(std::size_t slot) { return ++generation_[slot]; }
  bool current(std::size_t slot, uint64_t generation) const {
    return generation_[slot] == generation;
  }

 private:
  Config config_;
  int sigints_ = 0;
  Micros idle_since_ = 0;  // 0: not idle
  std::vector<uint64_t> generation_;
};

}  // namespace kiln::supervisor
