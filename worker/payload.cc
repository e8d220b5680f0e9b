#include "worker/payload.h"

#include <cstring>

#include "common/msgpack_scan.h"

namespace kiln::worker {
Expected<Payload> Payload::parse(std::string_view kind, const proto::RawObject& raw) {
  Payload p;
  p.kind_ = kind;
  // Unpacked, every msgpack object costs 24 bytes however small it was on the wire: 60 MB of
  // small ints took a worker to 1.47 GB. Counted first, without allocating.
  uint64_t objects = 0;
  std::size_t end = 0;
  if (mp::skip_object(raw.bytes, end, mp::kMaxDepth, nullptr, &objects) &&
      objects > kMaxPayloadObjects) {
    return fail(std::string(kind) + ".payload: " + std::to_string(objects) +
                " msgpack values, more than the " + std::to_string(kMaxPayloadObjects) +
                " a payload may hold");
  }
  try {
    // The payload arrived inside a frame the link already scanned; the limits bound it again.
    const std::size_t n = raw.bytes.size();
    const msgpack::unpack_limit limit(n, n / 2, n, n, n, mp::kMaxDepth);
    p.handle_ = msgpack::unpack(raw.bytes.data(), n, nullptr, nullptr, limit);
  } catch (const std::exception& e) {
    return fail(std::string(kind) + ".payload: " + e.what());
  }
  if (p.handle_.get().type != msgpack::type::MAP) {
    return fail(std::string(kind) + ".payload: expected map, got " +
                mp::type_name(p.handle_.get()));
  }
  return p;
}

const msgpack::object* Payload::find(const char* key) const {
  const msgpack::object& map = handle_.get();
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object& k = map.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && k.via.str.size == std::strlen(key) &&
        std::memcmp(k.via.str.ptr, key, k.via.str.size) == 0) {
      return &map.via.map.ptr[i].val;
    }
  }
  return nullptr;
}

bool Payload::invalid(const char* key, const std::string& what) {
  if (error_.empty()) error_ = kind_ + "." + key + ": " + what;
  return false;
}

const msgpack::object* Payload::typed(const char* key, msgpack::type::object_type type,
                                      const char* expected, bool required, bool& ok) {
  ok = true;
  const msgpack::object* o = find(key);
  if (o == nullptr) {
    if (required) ok = invalid(key, "missing");
    return nullptr;
  }
  if (o->type != type) {
    ok = invalid(key, std::string("expected ") + expected + ", got " + mp::type_name(*o));
    return nullptr;
  }
  return o;
}

bool Payload::get(const char* key, std::string& out, bool required) {
  bool ok;
  if (const auto* o = typed(key, msgpack::type::STR, "str", required, ok)) {
    out.assign(o->via.str.ptr, o->via.str.size);
  }
  return ok;
}

bool Payload::get_bin(const char* key, std::string& out, bool required) {
  bool ok;
  if (const auto* o = typed(key, msgpack::type::BIN, "bin", required, ok)) {
    out.assign(o->via.bin.ptr, o->via.bin.size);
  }
  return ok;
}

bool Payload::get(const char* key, uint64_t& out, bool required) {
  bool ok;
  if (const auto* o = typed(key, msgpack::type::POSITIVE_INTEGER, "uint", required, ok)) {
    out = o->via.u64;
  }
  return ok;
}

bool Payload::get(const char* key, int64_t& out, bool required) {
  const msgpack::object* o = find(key);
  if (o == nullptr) return !required || invalid(key, "missing");
  if (o->type == msgpack::type::NEGATIVE_INTEGER) {
    out = o->via.i64;
  } else if (o->type == msgpack::type::POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
    out = static_cast<int64_t>(o->via.u64);
  } else {
    return invalid(key, std::string("expected int, got ") + mp::type_name(*o));
  }
  return true;
}

bool Payload::get(const char* key, bool& out, bool required) {
  bool ok;
  if (const auto* o = typed(key, msgpack::type::BOOLEAN, "bool", required, ok)) {
    out = o->via.boolean;
  }
  return ok;
}

bool Payload::get(const char* key, std::vector<std::string>& out, bool required) {
  bool ok;
  const auto* o = typed(key, msgpack::type::ARRAY, "array of str", required, ok);
  if (o == nullptr) return ok;
  out.clear();
  for (uint32_t i = 0; i < o->via.array.size; ++i) {
    const msgpack::object& item = o->via.array.ptr[i];
    if (item.type != msgpack::type::STR) {
      return invalid(key, "expected array of str, got " + std::string(mp::type_name(item)) +
                              " at index " + std::to_string(i));
    }
    out.emplace_back(item.via.str.ptr, item.via.str.size);
  }
  return true;
}

bool Payload::get(const char* key, std::vector<std::pair<std::string, std::string>>& out,
                  bool required) {
  bool ok;
  const auto* o = typed(key, msgpack::type::MAP, "map of str to str", required, ok);
  if (o == nullptr) return ok;
  out.clear();
  for (uint32_t i = 0; i < o->via.map.size; ++i) {
    const msgpack::object& k = o->via.map.ptr[i].key;
    const msgpack::object& v = o->via.map.ptr[i].val;
    if (k.type != msgpack::type::STR || v.type != msgpack::type::STR) {
      return invalid(key, "expected map of str to str");
    }
    out.emplace_back(std::string(k.via.str.ptr, k.via.str.size),
                     std::string(v.via.str.ptr, v.via.str.size));
  }
  return true;
}

bool Payload::get(const char* key,
                  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>>& out,
                  bool required) {
  bool ok;
  const auto* o = typed(key, msgpack::type::MAP, "map of str to [uint, uint]", required, ok);
  if (o == nullptr) return ok;
  out.clear();
  for (uint32_t i = 0; i < o->via.map.size; ++i) {
    const msgpack::object& k = o->via.map.ptr[i].key;
    const msgpack::object& v = o->via.map.ptr[i].val;
    const bool pair = v.type == msgpack::type::ARRAY && v.via.array.size == 2 &&
                      v.via.array.ptr[0].type == msgpack::type::POSITIVE_INTEGER &&
                      v.via.array.ptr[1].type == msgpack::type::POSITIVE_INTEGER;
    if (k.type != msgpack::type::STR || !pair) {
      return invalid(key, "expected map of str to [uint, uint]");
    }
    out.emplace_back(std::string(k.via.str.ptr, k.via.str.size),
                     std::pair(v.via.array.ptr[0].via.u64, v.via.array.ptr[1].via.u64));
  }
  return true;
}

}  // namespace kiln::worker
