#include "client/json_msgpack.h"

#include <msgpack.hpp>

#include "common/build_key.h"
#include "common/msgpack_scan.h"
#include "common/text.h"

namespace kiln::client {
namespace {

nlohmann::json bytes_json(const msgpack::object& o, bool* as_base64) {
  const std::string_view bytes(o.via.bin.ptr, o.via.bin.size);
  *as_base64 = !is_valid_utf8(bytes);
  return *as_base64 ? nlohmann::json(base64_encode(bytes)) : nlohmann::json(std::string(bytes));
}

nlohmann::json convert(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return nullptr;
    case msgpack::type::BOOLEAN:
      return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER:
      return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return o.via.f64;
    case msgpack::type::STR:
      return to_valid_utf8(std::string_view(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN:
    case msgpack::type::EXT: {
      bool b64 = false;
      nlohmann::json v = bytes_json(o, &b64);
      return b64 ? nlohmann::json{{"base64", v}} : v;
    }
    case msgpack::type::ARRAY: {
      nlohmann::json a = nlohmann::json::array();
      for (uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(convert(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      nlohmann::json m = nlohmann::json::object();
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const msgpack::object& k = o.via.map.ptr[i].key;
        const msgpack::object& v = o.via.map.ptr[i].val;
        std::string key = k.type == msgpack::type::STR
                              ? to_valid_utf8(std::string_view(k.via.str.ptr, k.via.str.size))
                              : convert(k).dump();
        if (v.type == msgpack::type::BIN) {
          bool b64 = false;
          nlohmann::json bytes = bytes_json(v, &b64);
          m[b64 ? key + "_base64" : key] = std::move(bytes);
        } else {
          m[key] = convert(v);
        }
      }
      return m;
    }
  }
  return nullptr;
}

}  // namespace

proto::RawObject to_msgpack(const nlohmann::json& value) {
  const std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(value);
  return proto::RawObject{std::string(bytes.begin(), bytes.end())};
}

nlohmann::json to_json(const proto::RawObject& value) {
  const std::size_t n = value.bytes.size();
  const msgpack::unpack_limit limit(n, n / 2, n, n, n, mp::kMaxDepth);
  const msgpack::object_handle h = msgpack::unpack(value.bytes.data(), n, nullptr, nullptr, limit);
  return convert(h.get());
}

std::string json_text(const nlohmann::json& value, int indent) {
  return value.dump(indent, ' ', /*ensure_ascii=*/true);
}

}  // namespace kiln::client
