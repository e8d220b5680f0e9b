// What the two decoder fuzz targets check on every input: a rejection says why, and a message
// that decodes encodes and decodes again to the same message (nothing valid is lost or changed).
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "common/frame.h"
#include "common/protocol.h"

namespace kiln::fuzz {

template <class Decode>
void check_round_trip(std::string_view body, Decode decode) {
  auto first = decode(body);
  if (!first) {
    if (first.error().empty()) __builtin_trap();
    return;
  }
  std::string frame;
  std::visit([&](const auto& m) { proto::encode(m, frame); }, *first);
  auto again = decode(std::string_view(frame).substr(kFrameHeaderSize));
  if (!again || !(*again == *first)) __builtin_trap();
}

}  // namespace kiln::fuzz
