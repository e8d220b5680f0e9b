// The frame reader fed an arbitrary byte stream in arbitrary splits. The first input byte seeds
// the split sizes; the rest is the stream. Whatever the splits, the reader must yield the same
// bodies and stop at the same error as when it gets the whole stream at once.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/frame.h"
#include "common/protocol.h"

namespace {

struct Outcome {
  std::vector<std::string> bodies;
  bool failed = false;
  std::string error;
  bool operator==(const Outcome&) const = default;
};

// A small frame limit, so that the limit's own checks are reached by short inputs too.
constexpr uint32_t kMaxFrame = 4096;

Outcome read_in_pieces(std::string_view stream, uint32_t seed) {
  kiln::FrameReader reader(kMaxFrame);
  Outcome out;
  auto keep = [&](std::string_view body) {
    out.bodies.emplace_back(body);
    // Every whole body also goes through both client-link decoders: neither may crash.
    (void)kiln::proto::decode_client_request(body);
    (void)kiln::proto::decode_client_event(body);
    return true;
  };
  kiln::Expected<void> fed;
  while (!stream.empty() && fed) {
    seed = seed * 1103515245u + 12345u;  // a fixed LCG: the same input, the same splits
    const std::size_t n = seed == 0 ? stream.size() : 1 + (seed >> 16) % 17;
    const std::string_view piece = stream.substr(0, n);
    stream.remove_prefix(piece.size());
    fed = reader.feed(piece, keep);
  }
  out.failed = !fed;
  if (!fed) out.error = fed.error();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Outcome pieces = read_in_pieces(stream, data[0]);
  const Outcome whole = read_in_pieces(stream, 0);
  if (!(pieces == whole)) __builtin_trap();
  for (const auto& body : whole.bodies) {
    if (body.empty() || body.size() > kMaxFrame) __builtin_trap();
  }
  return 0;
}
