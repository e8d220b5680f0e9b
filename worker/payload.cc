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
      objects > proto::kMaxPayloadObjects) {
    return fail(std::string(kind) + ".payload: " + std::to_string(objects) +
                " msgpack values, more than the " + std::to_string(proto::kMaxPayloadObjects) +
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

}  // namespace kiln::worker
