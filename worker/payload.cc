#include "worker/payload.h"

#include <cstring>

#include "common/msgpack_scan.h"

namespace kiln::worker {
Expected<Payload> Payload::parse(std::string_view kind, const proto::RawObject& raw) {
  Payload p;
  p.kind_ = kind;
  Expected<msgpack::object_handle> unpacked =
      mp::unpack_counted(raw.bytes, proto::kMaxPayloadObjects);
  if (!unpacked) return fail(std::string(kind) + ".payload: " + unpacked.error());
  p.handle_ = std::move(*unpacked);
  if (p.handle_.get().type != msgpack::type::MAP) {
    return fail(std::string(kind) + ".payload: expected map, got " +
                mp::type_name(p.handle_.get()));
  }
  return p;
}

Failure Payload::invalid(const char* key, const std::string& what) const {
  return fail(kind_ + "." + key + ": " + what);
}

Expected<const msgpack::object*> Payload::find(const char* key) const {
  const msgpack::object& map = handle_.get();
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object& k = map.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && k.via.str.size == std::strlen(key) &&
        std::memcmp(k.via.str.ptr, key, k.via.str.size) == 0) {
      return &map.via.map.ptr[i].val;
    }
  }
  return invalid(key, "missing");
}

Expected<std::string> Payload::str(const char* key) const {
  Expected<const msgpack::object*> o = find(key);
  if (!o) return fail(o.error());
  if ((*o)->type != msgpack::type::STR) {
    return invalid(key, std::string("expected str, got ") + mp::type_name(**o));
  }
  return std::string((*o)->via.str.ptr, (*o)->via.str.size);
}

Expected<uint64_t> Payload::uint(const char* key) const {
  Expected<const msgpack::object*> o = find(key);
  if (!o) return fail(o.error());
  if ((*o)->type != msgpack::type::POSITIVE_INTEGER) {
    return invalid(key, std::string("expected uint, got ") + mp::type_name(**o));
  }
  return (*o)->via.u64;
}

Expected<int64_t> Payload::int64(const char* key) const {
  Expected<const msgpack::object*> o = find(key);
  if (!o) return fail(o.error());
  if ((*o)->type == msgpack::type::NEGATIVE_INTEGER) return (*o)->via.i64;
  if ((*o)->type == msgpack::type::POSITIVE_INTEGER && (*o)->via.u64 <= INT64_MAX) {
    return static_cast<int64_t>((*o)->via.u64);
  }
  return invalid(key, std::string("expected int, got ") + mp::type_name(**o));
}

}  // namespace kiln::worker
