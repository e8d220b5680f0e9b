// Fault injection for tests (docs/protocol.md `selftest`), served only with --enable-selftest.
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "worker/crash_handler.h"
#include "worker/jobs.h"
#include "worker/payload.h"

// Outside any namespace and never inlined, so that tests find this exact name in the trace.
// Exempt from the sanitizers: UBSan would report the null store and exit instead of faulting.
extern "C" [[gnu::noinline, gnu::no_sanitize("undefined", "address")]] void kiln_selftest_crash() {
  // Loaded through a volatile so the compiler cannot see the null and turn the store into a trap
  // (which would be SIGILL, not SIGSEGV).
  static int* volatile target = nullptr;
  *target = 1;
  __asm__ volatile("" ::: "memory");  // keep the frame: no tail position for the store
}

namespace kiln::worker {
namespace {

// Memory kept by `alloc` for the rest of the worker's life (that is the point of the action).
std::vector<std::unique_ptr<char[]>>& kept_memory() {
  static std::vector<std::unique_ptr<char[]>> kept;
  return kept;
}

}  // namespace

proto::WorkerResult run_selftest(const proto::Job& job, JobContext& context) {
  Expected<Payload> parsed = Payload::parse("selftest", job.payload);
  if (!parsed) return job_error(proto::code::kBadPayload, parsed.error());
  Payload& p = *parsed;
  Expected<std::string> read_action = p.str("action");
  if (!read_action) return job_error(proto::code::kBadPayload, read_action.error());
  const std::string& action = *read_action;

  if (action == "crash" || action == "crash-report-hangs") {
    if (action == "crash-report-hangs") hang_crash_reports();
    kiln_selftest_crash();
  } else if (action == "abort") {
    std::abort();
  } else if (action == "exit") {
    Expected<int64_t> code = p.int64("code");
    if (!code) return job_error(proto::code::kBadPayload, code.error());
    ::_exit(static_cast<int>(*code));
  } else if (action == "sleep") {
    Expected<uint64_t> ms = p.uint("ms");
    if (!ms) return job_error(proto::code::kBadPayload, ms.error());
    std::this_thread::sleep_for(std::chrono::milliseconds(*ms));
    return job_ok(proto::RawObject::nil());
  } else if (action == "hang") {
    context.watchdog.ignore_sigterm(true);
    // Says so once SIGTERM is ignored, so that a test can send it knowing it will be ignored.
    (void)context.link.send(proto::Phase{job.id, "hanging", std::nullopt});
    for (;;) ::pause();
  } else if (action == "alloc") {
    Expected<uint64_t> mb = p.uint("mb");
    if (!mb) return job_error(proto::code::kBadPayload, mb.error());
    const std::size_t bytes = static_cast<std::size_t>(*mb) << 20;
    auto block = std::make_unique_for_overwrite<char[]>(bytes);
    std::memset(block.get(), 0x5a, bytes);  // touch every page so it counts in RSS
    kept_memory().push_back(std::move(block));
    return job_ok(proto::RawObject::nil());
  } else if (action == "garbage") {
    // 0xc1 is never valid msgpack: a frame the supervisor must reject. No result follows.
    (void)context.link.send_raw(std::string("\x00\x00\x00\x01\xc1", 5));
    for (;;) ::pause();
  } else if (action == "fail") {
    Expected<std::string> message = p.str("message");
    if (!message) return job_error(proto::code::kBadPayload, message.error());
    return job_error(proto::code::kJobFailed, *message);
  }
  return job_error(proto::code::kBadPayload, "selftest.action: unknown action \"" + action + "\"");
}

}  // namespace kiln::worker
