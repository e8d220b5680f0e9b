#include "common/msgpack_scan.h"

#include <array>

namespace kiln::mp {

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNil:
      return "nil";
    case Kind::kBool:
      return "bool";
    case Kind::kUint:
      return "uint";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kStr:
      return "str";
    case Kind::kBin:
      return "bin";
    case Kind::kExt:
      return "ext";
    case Kind::kArray:
      return "array";
    case Kind::kMap:
      return "map";
  }
  return "?";
}

const char* type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return kind_name(Kind::kNil);
    case msgpack::type::BOOLEAN:
      return kind_name(Kind::kBool);
    case msgpack::type::POSITIVE_INTEGER:
      return kind_name(Kind::kUint);
    case msgpack::type::NEGATIVE_INTEGER:
      return kind_name(Kind::kInt);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return kind_name(Kind::kFloat);
    case msgpack::type::STR:
      return kind_name(Kind::kStr);
    case msgpack::type::BIN:
      return kind_name(Kind::kBin);
    case msgpack::type::ARRAY:
      return kind_name(Kind::kArray);
    case msgpack::type::MAP:
      return kind_name(Kind::kMap);
    case msgpack::type::EXT:
      return kind_name(Kind::kExt);
  }
  return "?";
}

namespace {

uint64_t read_be(const unsigned char* p, std::size_t n) {
  uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

bool read_header(std::string_view data, std::size_t off, Header& h) {
  if (off >= data.size()) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data()) + off;
  const std::size_t avail = data.size() - off;
  const unsigned char b = p[0];
  // A tag followed by an n-byte big-endian field that is the value or the length.
  auto sized = [&](Kind kind, std::size_t n, std::size_t extra = 0) {
    if (avail < 1 + n + extra) return false;
    h = Header{kind, 1 + n + extra, read_be(p + 1, n), 0};
    return true;
  };
  auto fixed = [&](Kind kind, std::size_t bytes) {
    if (avail < 1 + bytes) return false;
    h = Header{kind, 1, bytes, 0};
    return true;
  };
  if (b <= 0x7f) {
    h = Header{Kind::kUint, 1, 0, b};
    return true;
  }
  if (b >= 0xe0) return fixed(Kind::kInt, 0);
  if (b <= 0x8f) return h = Header{Kind::kMap, 1, b & 0x0fu, 0}, true;
  if (b <= 0x9f) return h = Header{Kind::kArray, 1, b & 0x0fu, 0}, true;
  if (b <= 0xbf) return h = Header{Kind::kStr, 1, b & 0x1fu, 0}, true;
  switch (b) {
    case 0xc0:
      return h = Header{Kind::kNil, 1, 0, 0}, true;
    case 0xc2:
      return h = Header{Kind::kBool, 1, 0, 0}, true;
    case 0xc3:
      return h = Header{Kind::kBool, 1, 0, 1}, true;
    case 0xc4:
      return sized(Kind::kBin, 1);
    case 0xc5:
      return sized(Kind::kBin, 2);
    case 0xc6:
      return sized(Kind::kBin, 4);
    case 0xc7:
      return sized(Kind::kExt, 1, 1);
    case 0xc8:
      return sized(Kind::kExt, 2, 1);
    case 0xc9:
      return sized(Kind::kExt, 4, 1);
    case 0xca:
      return fixed(Kind::kFloat, 4);
    case 0xcb:
      return fixed(Kind::kFloat, 8);
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
      const std::size_t n = std::size_t{1} << (b - 0xcc);
      if (avail < 1 + n) return false;
      h = Header{Kind::kUint, 1, n, read_be(p + 1, n)};
      return true;
    }
    case 0xd0:
      return fixed(Kind::kInt, 1);
    case 0xd1:
      return fixed(Kind::kInt, 2);
    case 0xd2:
      return fixed(Kind::kInt, 4);
    case 0xd3:
      return fixed(Kind::kInt, 8);
    case 0xd4:
      return fixed(Kind::kExt, 2);
    case 0xd5:
      return fixed(Kind::kExt, 3);
    case 0xd6:
      return fixed(Kind::kExt, 5);
    case 0xd7:
      return fixed(Kind::kExt, 9);
    case 0xd8:
      return fixed(Kind::kExt, 17);
    case 0xd9:
      return sized(Kind::kStr, 1);
    case 0xda:
      return sized(Kind::kStr, 2);
    case 0xdb:
      return sized(Kind::kStr, 4);
    case 0xdc:
      return sized(Kind::kArray, 2);
    case 0xdd:
      return sized(Kind::kArray, 4);
    case 0xde:
      return sized(Kind::kMap, 2);
    case 0xdf:
      return sized(Kind::kMap, 4);
    default:
      return false;  // 0xc1: never used
  }
}

bool skip_object(std::string_view data, std::size_t& off, unsigned max_depth, std::string* error,
                 uint64_t* objects) {
  // pending[d] = objects still to read at depth d+1; a map's pairs count twice. Each slot is
  // written before it is read, so it is not zero-filled: this runs once per map value of every
  // body, where clearing 65 slots was most of the cost of a body of many small keys.
  std::array<uint64_t, kMaxDepth + 1> pending;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  if (max_depth > kMaxDepth) max_depth = kMaxDepth;
  unsigned depth = 1;
  pending[0] = 1;
  std::size_t pos = off;
  auto failed = [&](std::string why) {
    if (error != nullptr) *error = std::move(why);
    return false;
  };
  while (depth > 0) {
    if (pending[depth - 1] == 0) {
      --depth;
      continue;
    }
    --pending[depth - 1];
    if (objects != nullptr) ++*objects;
    Header h;
    if (!read_header(data, pos, h)) {
      if (pos < data.size() && static_cast<unsigned char>(data[pos]) == 0xc1) {
        return failed("invalid byte 0xc1 at offset " + std::to_string(pos));
      }
      return failed("truncated at offset " + std::to_string(pos));
    }
    pos += h.header_len;
    const std::size_t remaining = data.size() - pos;
    switch (h.kind) {
      case Kind::kArray:
      case Kind::kMap: {
        const uint64_t items = h.kind == Kind::kMap ? h.size * 2 : h.size;
        if (items == 0) break;
        // Each element takes at least one byte: a larger count cannot be honest.
        if (items > remaining) return failed("truncated: container declares more than the body");
        if (depth > max_depth) {
          return failed("nesting deeper than " + std::to_string(max_depth));
        }
        pending[depth++] = items;
        break;
      }
      case Kind::kStr:
      case Kind::kBin:
      case Kind::kExt:
      case Kind::kFloat:
      case Kind::kInt:
        // For these, size is the byte length of the data after the header.
        if (h.size > remaining) return failed("truncated at offset " + std::to_string(pos));
        pos += h.size;
        break;
      case Kind::kUint:
        pos += h.size;  // read_header already checked these bytes are present
        break;
      case Kind::kNil:
      case Kind::kBool:
        break;
    }
  }
  off = pos;
  return true;
}

const msgpack::object* field(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  const msgpack::object* found = nullptr;
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object& k = map.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      found = &map.via.map.ptr[i].val;
    }
  }
  return found;
}

}  // namespace kiln::mp
