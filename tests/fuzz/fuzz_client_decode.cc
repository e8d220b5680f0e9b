// The client-link decoders (both directions) on an arbitrary frame body. A message that decodes
// must encode and decode again to the same message: nothing valid is lost or changed.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "common/frame.h"
#include "common/protocol.h"

namespace {

template <class Decode>
void round_trip(std::string_view body, Decode decode) {
  auto first = decode(body);
  if (!first) {
    if (first.error().empty()) __builtin_trap();  // every rejection says why
    return;
  }
  std::string frame;
  std::visit([&](const auto& m) { kiln::proto::encode(m, frame); }, *first);
  auto again = decode(std::string_view(frame).substr(kiln::kFrameHeaderSize));
  if (!again || !(*again == *first)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  round_trip(body, [](std::string_view b) { return kiln::proto::decode_client_request(b); });
  round_trip(body, [](std::string_view b) { return kiln::proto::decode_client_event(b); });
  return 0;
}
