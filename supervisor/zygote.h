// One tool's zygote (docs/protocol.md "Zygote link"): a process per pool that warms the tool up
// once and forks every worker's tool from it. The supervisor binds its listening socket (an
// abstract Unix name, only for our own uid: the zygote checks each peer) before any worker that
// would ask it starts, hands it to the zygote as its fd 3 and keeps no copy, so that while the
// zygote is down a worker's request is refused at once and the worker starts its tool from
// scratch: no job waits for a zygote. A zygote that dies is started again, with the workers'
// crash-loop backoff when it dies young; it is stopped while the pool is quiesced.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <string>

#include "common/exec_strings.h"
#include "common/fd.h"

namespace kiln::supervisor {

class Zygote {
 public:
  // `argv` is the tool's command; `envp` the workers' environment (with the build key).
  Zygote(uv_loop_t* loop, std::string name, std::vector<std::string> argv,
         std::vector<std::string> envp, std::string address, int devnull);
  Zygote(const Zygote&) = delete;
  Zygote& operator=(const Zygote&) = delete;

  // Wanted: started now unless it runs or is backing off after a crash.
  void want();
  // Not wanted (the pool quiesces or stops): SIGKILL, no restart. The tools it forked go on:
  // each belongs to its worker.
  void unwant();
  // For the end of the loop: unwant() and close every handle.
  void close();
  pid_t pid() const { return running_ ? pid_ : 0; }
  const std::string& address() const { return address_; }

 private:
  void spawn();
  void close_process();
  void on_exit(int64_t status, int signal);

  uv_loop_t* loop_;
  std::string name_;
  ExecStrings argv_, envp_;
  std::string address_;  // '@' then the abstract name
  int devnull_;
  uv_process_t* process_ = nullptr;  // one per start, freed when closed
  uv_timer_t restart_;
  bool timer_ready_ = false;
  bool wanted_ = false;
  bool running_ = false;
  bool backing_off_ = false;
  bool closed_ = false;
  pid_t pid_ = 0;
  uint64_t started_ms_ = 0;
  int failures_ = 0;  // deaths in a row soon after a start
};

}  // namespace kiln::supervisor
