// How long one hostile frame holds the supervisor's loop: decoding a body at the frame-size limit
// made of millions of map keys (all distinct, or one unknown key repeated), beside the floor any
// decoder pays, one structural pass over the same bytes (mp::skip_object).
//   decode_bench [--quick] [--rounds N]
#include <msgpack.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "common/msgpack_scan.h"
#include "common/protocol.h"
#include "tests/hostile_frames.h"

using kiln::bench::Clock;

int main(int argc, char** argv) {
  const kiln::bench::Options o =
      kiln::bench::parse_options(argc, argv, "decode_bench [--quick] [--rounds N]");
  const std::size_t size = o.quick ? (1u << 20) : kiln::kDefaultMaxFrame;
  for (bool distinct : {true, false}) {
    const std::string body = kiln::testing::body_of_many_keys(size, distinct);
    std::vector<double> decode, scan;
    for (int r = 0; r < o.rounds; ++r) {
      auto start = Clock::now();
      if (!kiln::proto::decode_client_request(body)) kiln::bench::die("the body did not decode");
      decode.push_back(kiln::bench::micros_since(start));
      start = Clock::now();
      std::size_t off = 0;
      if (!kiln::mp::skip_object(body, off, kiln::mp::kMaxDepth)) {
        kiln::bench::die("the body did not scan");
      }
      scan.push_back(kiln::bench::micros_since(start));
    }
    const kiln::bench::Summary d = kiln::bench::summarize(decode);
    const kiln::bench::Summary s = kiln::bench::summarize(scan);
    const double ratio = d.median / s.median;
    kiln::bench::row(o.figure("decode a " + std::to_string(size >> 20) + " MiB frame of " +
                              std::to_string((size - 64) / 10) + " " +
                              (distinct ? "distinct" : "repeated") + " keys"),
                     kiln::bench::show_ms(d), "one scan of it: " + kiln::bench::show_ms(s),
                     kiln::bench::show_ratio(ratio), "<= 1 s", d.median < 1e6);
  }
  return 0;
}
