// The serve loop: one job at a time until `shutdown` or end of input.
#include <poll.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <deque>
#include <iterator>

#include "common/exit_codes.h"
#include "common/fd.h"
#include "worker/jobs.h"
#include "worker/serve.h"

namespace kiln::worker {
namespace {

// The handler of each of proto::kBuiltinKinds, in its order.
constexpr JobHandler kHandlers[] = {run_echo, run_exec, run_selftest};
static_assert(std::size(kHandlers) == std::size(proto::kBuiltinKinds));

bool served(std::string_view kind, bool selftest) {
  return selftest || kind != proto::kSelftestKind;
}

JobHandler find_handler(std::string_view kind, bool selftest) {
  for (std::size_t i = 0; i < std::size(kHandlers); ++i) {
    if (proto::kBuiltinKinds[i] == kind && served(kind, selftest)) return kHandlers[i];
  }
  return nullptr;
}

// A result frame the supervisor can still wrap for its client within max_frame.
constexpr std::size_t kEnvelopeRoom = 256;

}  // namespace

std::vector<std::string> served_kinds(bool selftest) {
  std::vector<std::string> kinds;
  for (std::string_view kind : proto::kBuiltinKinds) {
    if (served(kind, selftest)) kinds.emplace_back(kind);
  }
  return kinds;
}

namespace {

// A tool that died, or spoke out of turn, since the last job: a failure saying what happened
// (success while every tool is fit for a job). The job the worker was about to start is then
// answered not_started, not failed: it goes to another worker.
Expected<void> tools_fit(JobContext& context) {
  for (const auto& tool : context.tools) {
    if (Expected<void> fit = tool->check_idle(); !fit) return fit;
  }
  return {};
}

// Blocks until the supervisor's link is readable; a tool that exits or says anything meanwhile
// ends the worker (false), before it is given a job it would cost. Without tools there is nothing
// to watch.
bool wait_for_command(JobContext& context) {
  if (context.tools.empty() || context.link.has_buffered()) return true;
  std::vector<pollfd> fds{{context.link.read_fd(), POLLIN, 0}};
  for (const auto& tool : context.tools) {
    fds.push_back({tool->exit_fd(), POLLIN, 0});
    fds.push_back({tool->link_fd(), POLLIN, 0});
  }
  for (;;) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      fatal_errno("poll");
    }
    if (Expected<void> fit = tools_fit(context); !fit) {
      std::fprintf(stderr, "kiln-worker: %s\n", fit.error().c_str());
      return false;
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

namespace {

// Commands read from the link and not yet acted on: the supervisor may send a job before the
// last one's result is back (pipelining), and may then ask that it not be started (`cancel`).
struct Inbox {
  struct Entry {
    proto::Job job;
    bool cancelled = false;
  };
  std::deque<Entry> jobs;
  bool shutdown = false;  // after the jobs before it
};

// Reads one command into the inbox (blocking only if none has arrived): what Link::receive gave.
Expected<Link::Received> read_command(JobContext& context, Inbox& inbox) {
  proto::WorkerCommand command;
  Expected<Link::Received> received = context.link.receive(command);
  if (!received || *received != Link::Received::kMessage) return received;
  if (auto* job = std::get_if<proto::Job>(&command)) {
    inbox.jobs.push_back({std::move(*job), false});
  } else if (auto* cancel = std::get_if<proto::Cancel>(&command)) {
    // A job already started or done is not in the inbox: its result answers the cancel.
    for (Inbox::Entry& e : inbox.jobs) {
      if (e.job.id == cancel->id && !e.cancelled) {
        e.cancelled = true;
        break;
      }
    }
  } else {
    inbox.shutdown = true;
  }
  return Link::Received::kMessage;
}

// Waits for the next job (false: end the worker, with `exit` its status) and takes in every
// command that has arrived meanwhile, so that a cancel is seen before its job would start.
bool next_job(JobContext& context, Inbox& inbox, int& exit) {
  for (;;) {
    if (inbox.jobs.empty()) {
      if (inbox.shutdown) {
        exit = exit_code::kOk;
        return false;
      }
      if (!wait_for_command(context)) {
        exit = exit_code::kToolFailed;
        return false;
      }
    }
    while (inbox.jobs.empty() || context.link.ready()) {
      Expected<Link::Received> received = read_command(context, inbox);
      if (!received) {
        spdlog::error("protocol error from the supervisor: {}", received.error());
        exit = exit_code::kProtocolError;
        return false;
      }
      if (*received == Link::Received::kEnd) {
        exit = exit_code::kOk;
        return false;
      }
      if (inbox.jobs.empty() && inbox.shutdown) break;
    }
    if (!inbox.jobs.empty()) return true;
  }
}

proto::WorkerResult run_job(const proto::Job& job, JobContext& context) {
  const JobHandler handler = find_handler(job.kind, context.options.enable_selftest);
  if (handler != nullptr) return handler(job, context);
  if (Tool* tool = find_tool(context, job.kind)) {
    Tool::Outcome outcome = tool->run(job, context.link);
    if (outcome.retire) outcome.result.retire = true;
    return std::move(outcome.result);
  }
  return job_error(proto::code::kUnknownKind, "no handler for kind \"" + job.kind + "\"");
}

// The result's frame, or a job_failed one if it would not fit the supervisor's frame.
std::string result_frame(const proto::WorkerResult& result, std::size_t max_frame) {
  std::string frame;
  proto::encode(result, frame);
  if (frame.size() - kFrameHeaderSize + kEnvelopeRoom <= max_frame) return frame;
  const std::size_t size = frame.size();
  frame.clear();
  proto::WorkerResult too_big = job_error(
      proto::code::kJobFailed, "the result of " + std::to_string(size) +
                                   " bytes does not fit the maximum frame of " +
                                   std::to_string(max_frame) + " bytes; lower max_output_bytes");
  too_big.id = result.id;
  too_big.run_us = result.run_us;
  too_big.retire = result.retire;
  proto::encode(too_big, frame);
  return frame;
}

}  // namespace

int serve(JobContext& context) {
  Inbox inbox;
  int exit = exit_code::kOk;
  while (next_job(context, inbox, exit)) {
    const Inbox::Entry entry = std::move(inbox.jobs.front());
    inbox.jobs.pop_front();
    const proto::Job& job = entry.job;
    const auto start = std::chrono::steady_clock::now();
    proto::WorkerResult result;
    if (entry.cancelled) {
      result = job_error(proto::code::kNotStarted, "cancelled before it started");
    } else if (Expected<void> fit = tools_fit(context); !fit) {
      std::fprintf(stderr, "kiln-worker: %s\n", fit.error().c_str());
      result = job_error(proto::code::kNotStarted, fit.error());
      result.retire = true;
    } else {
      result = run_job(job, context);
    }
    result.id = job.id;
    result.run_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                              std::chrono::steady_clock::now() - start)
                                              .count());
    if (Expected<void> sent =
            context.link.send_frames(result_frame(result, context.options.max_frame));
        !sent) {
      // The supervisor is gone; the watchdog ends the worker, or end of input will.
      spdlog::warn("{}", sent.error());
      return exit_code::kOk;
    }
    // A tool that died, broke its link or timed out: this worker is done (the supervisor
    // replaces it), and its job was the only one that paid.
    if (result.retire) return exit_code::kToolFailed;
  }
  return exit;
}

}  // namespace kiln::worker
