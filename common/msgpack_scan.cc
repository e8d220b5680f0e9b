#include "common/msgpack_scan.h"

#include <array>
#include <memory>

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

// How the tags 0xc0 to 0xdf read, a row each: their kind, and what follows the tag. kConst:
// nothing (the row's value is the object's); kSized: an n-byte big-endian length (after `extra`
// more bytes: an ext's type), then that many bytes; kFixed: n bytes of data; kValue: an n-byte
// big-endian value (a uint). kNever: 0xc1, which msgpack never uses.
enum class Form : uint8_t { kNever, kConst, kSized, kFixed, kValue };
struct Tag {
  Kind kind;
  Form form;
  uint8_t n = 0;
  uint8_t extra = 0;
  uint64_t value = 0;
};
constexpr Tag kTags[0xe0 - 0xc0] = {
    {Kind::kNil, Form::kConst},       {Kind::kNil, Form::kNever},            // c0 c1
    {Kind::kBool, Form::kConst, 0},   {Kind::kBool, Form::kConst, 0, 0, 1},  // c2 c3
    {Kind::kBin, Form::kSized, 1},    {Kind::kBin, Form::kSized, 2},         // c4 c5
    {Kind::kBin, Form::kSized, 4},    {Kind::kExt, Form::kSized, 1, 1},      // c6 c7
    {Kind::kExt, Form::kSized, 2, 1}, {Kind::kExt, Form::kSized, 4, 1},      // c8 c9
    {Kind::kFloat, Form::kFixed, 4},  {Kind::kFloat, Form::kFixed, 8},       // ca cb
    {Kind::kUint, Form::kValue, 1},   {Kind::kUint, Form::kValue, 2},        // cc cd
    {Kind::kUint, Form::kValue, 4},   {Kind::kUint, Form::kValue, 8},        // ce cf
    {Kind::kInt, Form::kFixed, 1},    {Kind::kInt, Form::kFixed, 2},         // d0 d1
    {Kind::kInt, Form::kFixed, 4},    {Kind::kInt, Form::kFixed, 8},         // d2 d3
    {Kind::kExt, Form::kFixed, 2},    {Kind::kExt, Form::kFixed, 3},         // d4 d5
    {Kind::kExt, Form::kFixed, 5},    {Kind::kExt, Form::kFixed, 9},         // d6 d7
    {Kind::kExt, Form::kFixed, 17},   {Kind::kStr, Form::kSized, 1},         // d8 d9
    {Kind::kStr, Form::kSized, 2},    {Kind::kStr, Form::kSized, 4},         // da db
    {Kind::kArray, Form::kSized, 2},  {Kind::kArray, Form::kSized, 4},       // dc dd
    {Kind::kMap, Form::kSized, 2},    {Kind::kMap, Form::kSized, 4},         // de df
};

}  // namespace

bool read_header(std::string_view data, std::size_t off, Header& h) {
  if (off >= data.size()) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data()) + off;
  const std::size_t avail = data.size() - off;
  const unsigned char b = p[0];
  if (b <= 0x7f) return h = Header{Kind::kUint, 1, 0, b}, true;
  if (b >= 0xe0) return h = Header{Kind::kInt, 1, 0, 0}, true;
  if (b <= 0x8f) return h = Header{Kind::kMap, 1, b & 0x0fu, 0}, true;
  if (b <= 0x9f) return h = Header{Kind::kArray, 1, b & 0x0fu, 0}, true;
  if (b <= 0xbf) return h = Header{Kind::kStr, 1, b & 0x1fu, 0}, true;
  const Tag& t = kTags[b - 0xc0];
  // Every form's n (and an ext's type byte) must be there; kFixed's n bytes are its data.
  if (t.form == Form::kNever || avail < 1 + std::size_t{t.n} + t.extra) return false;
  switch (t.form) {
    case Form::kConst:
      h = Header{t.kind, 1, 0, t.value};
      break;
    case Form::kSized:
      h = Header{t.kind, 1 + std::size_t{t.n} + t.extra, read_be(p + 1, t.n), 0};
      break;
    case Form::kFixed:
      h = Header{t.kind, 1, t.n, 0};
      break;
    case Form::kValue:
      h = Header{t.kind, 1, t.n, read_be(p + 1, t.n)};
      break;
    case Form::kNever:  // refused above
      break;
  }
  return true;
}

namespace {

// Why read_header failed at `pos`.
std::string header_failure(std::string_view data, std::size_t pos) {
  if (pos < data.size() && static_cast<unsigned char>(data[pos]) == 0xc1) {
    return "invalid byte 0xc1 at offset " + std::to_string(pos);
  }
  return "truncated at offset " + std::to_string(pos);
}

}  // namespace

Expected<void> skip_object(std::string_view data, std::size_t& off, unsigned max_depth,
                           uint64_t* objects) {
  // pending[d] = objects still to read at depth d+1; a map's pairs count twice. Each slot is
  // written before it is read, so it is not zero-filled: this runs once per map value of every
  // body, where clearing 65 slots was most of the cost of a body of many small keys.
  std::array<uint64_t, kMaxDepth + 1> pending;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  if (max_depth > kMaxDepth) max_depth = kMaxDepth;
  unsigned depth = 1;
  pending[0] = 1;
  std::size_t pos = off;
  auto failed = [](std::string why) { return fail(std::move(why)); };
  while (depth > 0) {
    if (pending[depth - 1] == 0) {
      --depth;
      continue;
    }
    --pending[depth - 1];
    if (objects != nullptr) ++*objects;
    Header h;
    if (!read_header(data, pos, h)) return failed(header_failure(data, pos));
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
  return {};
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

bool reference_everything(msgpack::type::object_type, std::size_t, void*) { return true; }

Expected<msgpack::object_handle> unpack_counted(std::string_view bytes, uint64_t max_objects) {
  uint64_t objects = 0;
  std::size_t end = 0;
  if (Expected<void> scanned = skip_object(bytes, end, kMaxDepth, &objects); !scanned) {
    return fail(scanned.error());
  }
  if (objects > max_objects) {
    return fail(std::to_string(objects) + " msgpack values, more than the " +
                std::to_string(max_objects) + " a payload may hold");
  }
  try {
    auto zone = std::make_unique<msgpack::zone>();
    const std::size_t n = bytes.size();
    const msgpack::unpack_limit limit(n, n / 2, n, n, n, kMaxDepth);
    std::size_t off = 0;
    bool referenced = false;
    const msgpack::object o = msgpack::unpack(*zone, bytes.data(), n, off, referenced,
                                              reference_everything, nullptr, limit);
    return msgpack::object_handle(o, std::move(zone));
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

}  // namespace kiln::mp
