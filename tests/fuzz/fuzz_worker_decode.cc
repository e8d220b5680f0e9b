// The worker-link and tool-link decoders (both directions of each: the worker reads what its
// tools send, kiln::tool::serve what the worker sends) on an arbitrary frame body.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/round_trip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  kiln::fuzz::check_round_trip(
      body, [](std::string_view b) { return kiln::proto::decode_worker_command(b); });
  kiln::fuzz::check_round_trip(
      body, [](std::string_view b) { return kiln::proto::decode_worker_event(b); });
  kiln::fuzz::check_round_trip(
      body, [](std::string_view b) { return kiln::proto::decode_tool_command(b); });
  kiln::fuzz::check_round_trip(
      body, [](std::string_view b) { return kiln::proto::decode_tool_event(b); });
  return 0;
}
