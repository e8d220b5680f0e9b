// Frames built to be expensive to decode, shared by the tests that bound the cost and the bench
// that measures it.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

namespace kiln::testing {

// A `cancel` body of about `size` bytes: {type, id} and then millions of 8-byte keys with nil
// values, all distinct or all one unknown key.
inline std::string body_of_many_keys(std::size_t size, bool distinct) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  const auto n = static_cast<uint32_t>((size - 64) / 10);  // 8-byte key and nil: 10 bytes
  pk.pack_map(n + 2);
  pk.pack(std::string("type")), pk.pack(std::string("cancel"));
  pk.pack(std::string("id")), pk.pack(1);
  char key[9];
  for (uint32_t i = 0; i < n; ++i) {
    std::snprintf(key, sizeof key, "x%07u", distinct ? i % 10000000 : 0);
    pk.pack_str(8), pk.pack_str_body(key, 8), pk.pack_nil();
  }
  return std::string(buf.data(), buf.size());
}

}  // namespace kiln::testing
