#include "tests/vectors.h"

#include <msgpack.hpp>

#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace kiln::testing {

const nlohmann::json& protocol_vectors() {
  static const nlohmann::json vectors = [] {
    const char* env = std::getenv("KILN_PROTOCOL_VECTORS");
    const std::string path = env != nullptr ? env : KILN_PROTOCOL_VECTORS;
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open protocol vectors at " + path);
    return nlohmann::json::parse(in);
  }();
  return vectors;
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return out;
}

namespace {

nlohmann::json to_json(const msgpack::object& o) {
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
      return std::string(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN: {
      static constexpr char kHex[] = "0123456789abcdef";
      std::string hex;
      for (uint32_t i = 0; i < o.via.bin.size; ++i) {
        const auto b = static_cast<unsigned char>(o.via.bin.ptr[i]);
        hex += kHex[b >> 4];
        hex += kHex[b & 0xf];
      }
      return {{"$bin", hex}};
    }
    case msgpack::type::ARRAY: {
      nlohmann::json a = nlohmann::json::array();
      for (uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(to_json(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      nlohmann::json m = nlohmann::json::object();
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        m[o.via.map.ptr[i].key.as<std::string>()] = to_json(o.via.map.ptr[i].val);
      }
      return m;
    }
    case msgpack::type::EXT:
      break;
  }
  throw std::runtime_error("msgpack ext has no JSON form here");
}

}  // namespace

nlohmann::json msgpack_to_json(std::string_view bytes) {
  msgpack::object_handle h = msgpack::unpack(bytes.data(), bytes.size());
  return to_json(h.get());
}

}  // namespace kiln::testing
