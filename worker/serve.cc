// The serve loop: one job at a time until `shutdown` or end of input.
#include <poll.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

#include "common/exit_codes.h"
#include "common/fd.h"
#include "worker/jobs.h"
#include "worker/serve.h"

namespace kiln::worker {
namespace {

struct KindEntry {
  std::string_view kind;
  JobHandler handler;
  bool selftest_only;
};

constexpr KindEntry kKinds[] = {
    {"echo", run_echo, false},
    {"exec", run_exec, false},
    {"selftest", run_selftest, true},
};

JobHandler find_handler(std::string_view kind, bool selftest) {
  for (const KindEntry& k : kKinds) {
    if (k.kind == kind && (selftest || !k.selftest_only)) return k.handler;
  }
  return nullptr;
}

// A result frame the supervisor can still wrap for its client within max_frame.
constexpr std::size_t kEnvelopeRoom = 256;

}  // namespace

std::vector<std::string> served_kinds(bool selftest) {
  std::vector<std::string> kinds;
  for (const KindEntry& k : kKinds) {
    if (selftest || !k.selftest_only) kinds.emplace_back(k.kind);
  }
  return kinds;
}

namespace {

// Blocks until the supervisor's link is readable; a tool that exits meanwhile ends the worker
// (false), before it is given a job it would cost. Without tools there is nothing to watch.
bool wait_for_command(JobContext& context) {
  if (context.tools.empty() || context.link.has_buffered()) return true;
  std::vector<pollfd> fds{{context.link.read_fd(), POLLIN, 0}};
  for (const auto& tool : context.tools) fds.push_back({tool->exit_fd(), POLLIN, 0});
  for (;;) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      fatal_errno("poll");
    }
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents != 0) {
        std::fprintf(stderr, "kiln-worker: %s\n", context.tools[i - 1]->reap_idle().c_str());
        return false;
      }
    }
    if (fds[0].revents != 0) return true;
  }
}

Tool* find_tool(JobContext& context, std::string_view kind) {
  for (const auto& tool : context.tools) {
    if (tool->name() == kind) return tool.get();
  }
  return nullptr;
}

}  // namespace

int serve(JobContext& context) {
  for (;;) {
    if (!wait_for_command(context)) return exit_code::kToolFailed;
    proto::WorkerCommand command;
    switch (context.link.receive(command)) {
      case Link::Status::kEnd:
        return exit_code::kOk;
      case Link::Status::kError:
        spdlog::error("protocol error from the supervisor: {}", context.link.error());
        return exit_code::kProtocolError;
      case Link::Status::kMessage:
        break;
    }
    if (std::holds_alternative<proto::WorkerShutdown>(command)) return exit_code::kOk;
    const proto::Job& job = std::get<proto::Job>(command);

    const auto start = std::chrono::steady_clock::now();
    const JobHandler handler = find_handler(job.kind, context.options.enable_selftest);
    Tool* tool = handler == nullptr ? find_tool(context, job.kind) : nullptr;
    proto::WorkerResult result;
    if (handler != nullptr) {
      result = handler(job, context);
    } else if (tool != nullptr) {
      Tool::Outcome outcome = tool->run(job, context.link);
      result = std::move(outcome.result);
      if (outcome.retire) result.retire = true;
    } else {
      result = job_error(proto::code::kUnknownKind, "no handler for kind \"" + job.kind + "\"");
    }
    result.id = job.id;
    result.run_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                              std::chrono::steady_clock::now() - start)
                                              .count());
    std::string frame;
    proto::encode(result, frame);
    if (frame.size() - kFrameHeaderSize + kEnvelopeRoom > context.options.max_frame) {
      const std::size_t size = frame.size();
      frame.clear();
      proto::WorkerResult too_big = job_error(
          proto::code::kJobFailed,
          "the result of " + std::to_string(size) + " bytes does not fit the maximum frame of " +
              std::to_string(context.options.max_frame) + " bytes; lower max_output_bytes");
      too_big.id = job.id;
      too_big.run_us = result.run_us;
      too_big.retire = result.retire;
      proto::encode(too_big, frame);
    }
    if (!context.link.send_frames(frame)) {
      // The supervisor is gone; the watchdog ends the worker, or end of input will.
      spdlog::warn("{}", context.link.error());
      return exit_code::kOk;
    }
    // A tool that died, broke its link or timed out: this worker is done (the supervisor
    // replaces it), and its job was the only one that paid.
    if (result.retire) return exit_code::kToolFailed;
  }
}

}  // namespace kiln::worker
