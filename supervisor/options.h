// kiln-supervisor's options (main.cc parses them; docs/design.md "The supervisor's life").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/frame.h"
#include "supervisor/pool.h"

namespace kiln::supervisor {

struct Options {
  std::size_t workers = 0;               // 0: the number of CPUs
  std::string worker_path;               // "": kiln-worker beside this binary
  std::optional<int> read_fd, write_fd;  // client link; default stdin/stdout
  std::string listen;                    // serve this Unix socket instead
  uint64_t start_timeout_ms = 30000;
  uint64_t idle_exit_ms = 0;        // --listen: exit after this long with no client, no job
  std::size_t max_connections = 0;  // --listen: 0 = what the fd limit allows (see run.cc)
  std::optional<pid_t> parent;      // default: the process that started us
  std::string key_file;
  uint64_t job_timeout_ms = 0;
  uint64_t grace_ms = 2000;
  uint64_t idle_quiesce_ms = 0;
  uint64_t max_jobs_per_worker = 0;
  std::size_t pipeline_depth = kDefaultPipelineDepth;
  uint64_t max_worker_rss_mb = 0;
  std::size_t max_queue = 100000;
  uint64_t max_queue_mb = 1024;
  std::size_t max_client_queue = 0;  // 0: max_queue in pipe mode, a quarter of it with --listen
  uint64_t max_client_queue_mb = 0;  // 0: the same of max_queue_mb
  uint32_t max_frame = kDefaultMaxFrame;
  uint64_t status_interval_ms = 10000;
  bool enable_selftest = false;
  std::vector<std::string> tools;    // NAME=COMMAND, checked by main.cc, passed on to the workers
  std::vector<std::string> zygotes;  // NAMEs of tools forked from a zygote (supervisor/zygote.h)
  std::string log_level;
  std::string log_file;
  uint64_t log_max_mb = 256;     // --log-file's cap: what one run writes to it (0: none)
  std::string trace_file;        // --trace: a Chrome Trace Event timeline (supervisor/trace.h)
  uint64_t trace_max_mb = 1024;  // its cap, and that of a client's `trace` (0: none)
  std::string distcc_hosts;  // --distcc: DISTCC_HOSTS syntax (supervisor/hosts.h); checked by main
  std::string distcc_client = "distcc";  // the distcc client; one without '/' is found in PATH
};

// Runs the supervisor to the end; returns the exit status.
int run(Options options);

}  // namespace kiln::supervisor
