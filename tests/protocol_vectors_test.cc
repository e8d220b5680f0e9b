// Every frame of tests/data/protocol-vectors.json: valid ones decode to exactly their `expect`,
// invalid ones are rejected as protocol errors without an exception or a large allocation.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "common/frame.h"
#include "common/protocol.h"
#include "tests/alloc_watch.h"
#include "tests/vectors.h"

namespace kiln {
namespace {

using nlohmann::json;
using testing::from_hex;
using testing::msgpack_to_json;
using testing::protocol_vectors;

// The bodies of the frames in `frame`, or the framing error.
struct Framed {
  std::vector<std::string> bodies;
  std::string error;
};

Framed read_frames(const std::string& bytes) {
  Framed out;
  FrameReader reader(static_cast<uint32_t>(protocol_vectors()["max_frame"].get<uint64_t>()));
  Expected<void> fed = reader.feed(bytes, [&](std::string_view b) {
    out.bodies.emplace_back(b);
    return true;
  });
  if (!fed) out.error = fed.error();
  return out;
}

// Decodes a body the way the receiving side of its link would; both directions are tried and
// exactly one must accept a valid body. Returns the re-encoded body of what was decoded.
template <class A, class B>
std::vector<std::string> decode_both(std::string_view body,
                                     kiln::Expected<A> (*first)(std::string_view),
                                     kiln::Expected<B> (*second)(std::string_view),
                                     std::vector<std::string>* errors) {
  std::vector<std::string> encoded;
  auto take = [&](auto result) {
    if (!result.ok()) {
      errors->push_back(result.error());
      return;
    }
    std::string frame;
    proto::encode(result.value(), frame);
    encoded.push_back(frame.substr(kFrameHeaderSize));
  };
  take(first(body));
  take(second(body));
  return encoded;
}

std::vector<std::string> decode_link(const std::string& link, std::string_view body,
                                     std::vector<std::string>* errors) {
  if (link == "client") {
    return decode_both(body, &proto::decode_client_request, &proto::decode_client_event, errors);
  }
  if (link == "tool") {
    return decode_both(body, &proto::decode_tool_command, &proto::decode_tool_event, errors);
  }
  if (link == "zygote") {
    return decode_both(body, &proto::decode_zygote_request, &proto::decode_zygote_event, errors);
  }
  EXPECT_EQ(link, "worker");
  return decode_both(body, &proto::decode_worker_command, &proto::decode_worker_event, errors);
}

TEST(ProtocolVectors, EveryLinkHasVectorsBothWays) {
  std::map<std::string, std::pair<int, int>> counts;  // link -> {valid, invalid}
  for (const json& v : protocol_vectors()["valid"]) ++counts[v["link"]].first;
  for (const json& v : protocol_vectors()["invalid"]) ++counts[v["link"]].second;
  EXPECT_EQ(counts["client"], std::make_pair(31, 31));
  EXPECT_EQ(counts["worker"], std::make_pair(9, 5));
  EXPECT_EQ(counts["tool"], std::make_pair(7, 6));
  EXPECT_EQ(counts["zygote"], std::make_pair(4, 3));
  EXPECT_EQ(counts.size(), 4u);
}

TEST(ProtocolVectors, EveryValidFrameDecodesToItsExpectation) {
  const json& valid = protocol_vectors()["valid"];
  ASSERT_GE(valid.size(), 20u);
  for (const json& v : valid) {
    SCOPED_TRACE(v["name"].get<std::string>());
    Framed framed = read_frames(from_hex(v["frame_hex"].get<std::string>()));
    ASSERT_EQ(framed.error, "");
    ASSERT_EQ(framed.bodies.size(), 1u);
    std::vector<std::string> errors;
    std::vector<std::string> decoded = decode_link(v["link"], framed.bodies[0], &errors);
    if (v.contains("sent_by")) {
      // A type both ends send (`stats`: the request and the answer), read as its sender's.
      ASSERT_EQ(v["link"], "client");
      ASSERT_EQ(v["sent_by"], "supervisor");
      Expected<proto::ClientEvent> event = proto::decode_client_event(framed.bodies[0]);
      ASSERT_TRUE(event.ok()) << event.error();
      std::string frame;
      proto::encode(event.value(), frame);
      decoded = {frame.substr(kFrameHeaderSize)};
    }
    ASSERT_EQ(decoded.size(), 1u) << "exactly one direction must accept it";
    const json got = msgpack_to_json(decoded[0]);
    for (const auto& [key, value] : v["expect"].items()) {
      ASSERT_TRUE(got.contains(key)) << key << " lost in " << got.dump();
      EXPECT_EQ(got[key], value) << key;
    }
  }
}

// An exec job's payload and value go through the same field lists as the messages: decoded and
// encoded again, they are the same bytes.
TEST(ProtocolVectors, ExecPayloadsAndValuesEncodeAgainToTheSameBytes) {
  std::map<std::string, int> seen;
  for (const json& v : protocol_vectors()["valid"]) {
    if (!v.contains("exec")) continue;
    SCOPED_TRACE(v["name"].get<std::string>());
    Framed framed = read_frames(from_hex(v["frame_hex"].get<std::string>()));
    ASSERT_EQ(framed.bodies.size(), 1u);
    const std::string what = v["exec"];
    ++seen[what];
    if (what == "payload") {
      Expected<proto::ClientRequest> m = proto::decode_client_request(framed.bodies[0]);
      ASSERT_TRUE(m.ok()) << m.error();
      const proto::RawObject& payload = std::get<proto::Submit>(*m).payload;
      Expected<proto::ExecRequest> request = proto::decode_exec_request(payload);
      ASSERT_TRUE(request.ok()) << request.error();
      EXPECT_EQ(proto::encode_exec_request(*request), payload);
    } else {
      ASSERT_EQ(what, "value");
      Expected<proto::ClientEvent> m = proto::decode_client_event(framed.bodies[0]);
      ASSERT_TRUE(m.ok()) << m.error();
      const proto::RawObject& value = *std::get<proto::Result>(*m).value;
      Expected<proto::ExecValue> decoded = proto::decode_exec_value(value);
      ASSERT_TRUE(decoded.ok()) << decoded.error();
      EXPECT_EQ(proto::encode_exec_value(*decoded), value);
    }
  }
  EXPECT_EQ(seen, (std::map<std::string, int>{{"payload", 1}, {"value", 1}}));
}

TEST(ProtocolVectors, EveryInvalidFrameIsRejected) {
  const json& invalid = protocol_vectors()["invalid"];
  ASSERT_GE(invalid.size(), 25u);
  for (const json& v : invalid) {
    SCOPED_TRACE(v["name"].get<std::string>());
    const std::string bytes = from_hex(v["frame_hex"].get<std::string>());
    testing::alloc_watch_arm();
    Framed framed = read_frames(bytes);
    std::vector<std::string> errors;
    std::size_t accepted = 0;
    for (const std::string& body : framed.bodies) {
      accepted += decode_link(v["link"], body, &errors).size();
    }
    const std::size_t largest = testing::alloc_watch_disarm();
    EXPECT_EQ(accepted, 0u);
    EXPECT_TRUE(!framed.error.empty() || !errors.empty());
    if (testing::alloc_watch_available()) {
      // Nothing near the declared sizes (4 G elements, 64 MiB) is ever asked for: at most a
      // small multiple of the bytes that really arrived, or msgpack's first zone chunk.
      EXPECT_LE(largest, std::max<std::size_t>(bytes.size() * 4, 64u << 10))
          << "largest allocation " << largest;
    }
  }
}

// The exact words for the cases people will meet, and which stage rejects each.
TEST(ProtocolVectors, RejectionsNameTheProblem) {
  std::map<std::string, std::string> first_error;
  for (const json& v : protocol_vectors()["invalid"]) {
    Framed framed = read_frames(from_hex(v["frame_hex"].get<std::string>()));
    std::vector<std::string> errors;
    if (!framed.bodies.empty()) decode_link(v["link"], framed.bodies[0], &errors);
    // The error of the direction that knows the message's type, if one does.
    std::string error = !framed.error.empty() ? framed.error : errors.at(0);
    for (const std::string& e : errors) {
      if (framed.error.empty() && e.rfind("unknown message type", 0) != 0) {
        error = e;
        break;
      }
    }
    first_error[v["name"]] = error;
  }
  EXPECT_EQ(first_error["length zero"], "frame: length 0");
  EXPECT_EQ(first_error["length 0xffffffff"],
            "frame: length 4294967295 exceeds the maximum of 67108864");
  EXPECT_EQ(first_error["body not msgpack"], "body: invalid byte 0xc1 at offset 0");
  EXPECT_EQ(first_error["body is an array"], "body: expected map, got array");
  EXPECT_EQ(first_error["trailing bytes"],
            "body: 1 bytes after the message (a body is exactly one map)");
  EXPECT_EQ(first_error["no type"], "body: no \"type\" key");
  EXPECT_EQ(first_error["type as bin"], "type: expected str, got bin");
  EXPECT_EQ(first_error["unknown type"], "unknown message type \"launch\"");
  EXPECT_EQ(first_error["submit without id"], "submit.id: missing");
  EXPECT_EQ(first_error["submit id str"], "submit.id: expected uint, got str");
  EXPECT_EQ(first_error["submit id negative"], "submit.id: expected uint, got int");
  EXPECT_EQ(first_error["submit id float"], "submit.id: expected uint, got float");
  EXPECT_EQ(first_error["submit priority str"], "submit.priority: expected int, got str");
  EXPECT_EQ(first_error["shutdown drain not bool"], "shutdown.drain: expected bool, got uint");
  EXPECT_EQ(first_error["map key not str"], "body: map keys must be str, got uint");
  EXPECT_EQ(first_error["array32 bomb in payload"],
            "body: truncated: container declares more than the body");
  EXPECT_EQ(first_error["nesting 100000 deep"], "body: nesting deeper than 64");
  EXPECT_EQ(first_error["result error data not bin"], "result.error.data: expected bin, got str");
  EXPECT_EQ(first_error["worker result without ok"], "result.ok: missing");
  EXPECT_EQ(first_error["worker ready kinds not array"], "ready.kinds: expected array, got str");
  EXPECT_EQ(first_error["worker cancel without id"], "cancel.id: missing");
}

}  // namespace
}  // namespace kiln
