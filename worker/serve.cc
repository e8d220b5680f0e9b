// The serve loop: one job at a time until `shutdown` or end of input.
#include <spdlog/spdlog.h>

#include <chrono>

#include "common/exit_codes.h"
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

int serve(JobContext& context) {
  for (;;) {
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
    proto::WorkerResult result =
        handler != nullptr
            ? handler(job, context)
            : job_error(proto::code::kUnknownKind, "no handler for kind \"" + job.kind + "\"");
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
      proto::encode(too_big, frame);
    }
    if (!context.link.send_frames(frame)) {
      // The supervisor is gone; the watchdog ends the worker, or end of input will.
      spdlog::warn("{}", context.link.error());
      return exit_code::kOk;
    }
  }
}

}  // namespace kiln::worker
