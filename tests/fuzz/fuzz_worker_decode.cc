// The worker-link and tool-link decoders (both directions of each: the worker reads what its
// tools send, kiln::tool::serve what the worker sends) on an arbitrary frame body, and the exec
// job's payload and value decoders on the same bytes as a job's payload or value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/round_trip.h"

namespace {

// What decodes encodes to something that decodes to the same.
template <class T, class Decode, class Encode>
void check_exec_round_trip(const kiln::proto::RawObject& raw, Decode decode, Encode encode) {
  kiln::Expected<T> first = decode(raw);
  if (!first.ok()) return;
  kiln::Expected<T> second = decode(encode(*first));
  if (!second.ok() || !(*second == *first)) __builtin_trap();
}

}  // namespace

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
  const kiln::proto::RawObject raw{std::string(body)};
  check_exec_round_trip<kiln::proto::ExecRequest>(raw, kiln::proto::decode_exec_request,
                                                  kiln::proto::encode_exec_request);
  check_exec_round_trip<kiln::proto::ExecValue>(raw, kiln::proto::decode_exec_value,
                                                kiln::proto::encode_exec_value);
  return 0;
}
