// The job kinds a worker serves (docs/protocol.md "Job kinds"), one file each.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.h"
#include "worker/link.h"
#include "worker/tool.h"
#include "worker/watchdog.h"
#include "worker/worker.h"

namespace kiln::worker {

struct JobContext {
  const Options& options;
  Link& link;
  Watchdog& watchdog;
  std::vector<std::unique_ptr<Tool>>& tools;
  std::vector<pid_t> tool_pids;  // the worker's own children between jobs
};

// A handler fills ok/value/error; the serve loop adds id and run_us.
using JobHandler = proto::WorkerResult (*)(const proto::Job& job, JobContext& context);

proto::WorkerResult run_echo(const proto::Job& job, JobContext& context);
proto::WorkerResult run_exec(const proto::Job& job, JobContext& context);
proto::WorkerResult run_selftest(const proto::Job& job, JobContext& context);

inline proto::WorkerResult job_ok(proto::RawObject value) {
  proto::WorkerResult r;
  r.ok = true;
  r.value = std::move(value);
  return r;
}

inline proto::WorkerResult job_error(std::string_view code, std::string message,
                                     std::optional<std::string> detail = std::nullopt) {
  proto::WorkerResult r;
  r.ok = false;
  r.error = proto::JobError{std::string(code), std::move(message), std::move(detail), std::nullopt,
                            std::nullopt};
  return r;
}

}  // namespace kiln::worker
