// One line of `kiln run`'s JSON-lines input: any bytes give a job or an error message, never an
// exception or a crash. A job's payload is always exactly one msgpack object.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "client/parsers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto job = kiln::client::parse_job_line(line);
  if (!job) {
    if (job.error().empty()) __builtin_trap();
    return 0;
  }
  if (job->kind.empty() && job->payload.bytes.empty()) __builtin_trap();
  return 0;
}
