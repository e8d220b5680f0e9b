#include "common/protocol.h"

#include <msgpack.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <type_traits>

#include "common/frame.h"
#include "common/msgpack_scan.h"
#include "common/text.h"

namespace kiln::proto {
namespace {

// ---- The fields of each message, in wire order: one list serves encode and decode. ----
// A plain member is required on the wire; a std::optional member is optional.

#define KILN_FIELDS(T)                             \
  template <class F, class M>                      \
  requires std::same_as<std::remove_const_t<M>, T> \
  void fields([[maybe_unused]] F&& f, [[maybe_unused]] M& m)

KILN_FIELDS(JobError) {
  f("code", m.code);
  f("message", m.message);
  f("detail", m.detail);
  f("data", m.data);
  f("errno", m.os_errno);
}
KILN_FIELDS(RunningJob) {
  f("id", m.id);
  f("kind", m.kind);
  f("name", m.name);
  f("elapsed_ms", m.elapsed_ms);
  f("phase", m.phase);
}
KILN_FIELDS(WorkerInfo) {
  f("pid", m.pid);
  f("state", m.state);
  f("jobs", m.jobs);
  f("rss_kb", m.rss_kb);
  f("job", m.job);
  f("host", m.host);
}
KILN_FIELDS(HostInfo) {
  f("host", m.host);
  f("slots", m.slots);
  f("running", m.running);
  f("jobs", m.jobs);
  f("failures", m.failures);
  f("state", m.state);
  f("reason", m.reason);
  f("since_ms", m.since_ms);
  f("retry_in_ms", m.retry_in_ms);
}
KILN_FIELDS(Submit) {
  f("id", m.id);
  f("kind", m.kind);
  f("payload", m.payload);
  f("timeout_ms", m.timeout_ms);
  f("priority", m.priority);
  f("notify_started", m.notify_started);
}
KILN_FIELDS(Cancel) { f("id", m.id); }
KILN_FIELDS(Quiesce) {}
KILN_FIELDS(Wakeup) {}
KILN_FIELDS(StatsRequest) {}
KILN_FIELDS(TraceRequest) { f("file", m.file); }
KILN_FIELDS(Traced) {
  f("file", m.file);
  f("error", m.error);
}
KILN_FIELDS(Shutdown) { f("drain", m.drain); }
KILN_FIELDS(Hello) {
  f("protocol", m.protocol);
  f("server", m.server);
  f("pid", m.pid);
  f("workers", m.workers);
  f("kinds", m.kinds);
  f("key_id", m.key_id);
}
KILN_FIELDS(Result) {
  f("id", m.id);
  f("ok", m.ok);
  f("value", m.value);
  f("error", m.error);
  f("worker_pid", m.worker_pid);
  f("queue_us", m.queue_us);
  f("run_us", m.run_us);
}
KILN_FIELDS(Status) {
  f("id", m.id);
  f("elapsed_ms", m.elapsed_ms);
  f("worker_pid", m.worker_pid);
  f("phase", m.phase);
}
KILN_FIELDS(Started) {
  f("id", m.id);
  f("worker_pid", m.worker_pid);
}
KILN_FIELDS(Stats) {
  f("uptime_ms", m.uptime_ms);
  f("workers_configured", m.workers_configured);
  f("workers_alive", m.workers_alive);
  f("workers_busy", m.workers_busy);
  f("jobs_submitted", m.jobs_submitted);
  f("jobs_succeeded", m.jobs_succeeded);
  f("jobs_failed", m.jobs_failed);
  f("jobs_queued", m.jobs_queued);
  f("jobs_running", m.jobs_running);
  f("worker_starts", m.worker_starts);
  f("worker_crashes", m.worker_crashes);
  f("max_queue_depth", m.max_queue_depth);
  f("queue_us_p50", m.queue_us_p50);
  f("queue_us_p95", m.queue_us_p95);
  f("queue_us_max", m.queue_us_max);
  f("run_us_p50", m.run_us_p50);
  f("run_us_p95", m.run_us_p95);
  f("run_us_max", m.run_us_max);
  f("worker_list", m.worker_list);
  f("hosts", m.hosts);
}
KILN_FIELDS(Error) {
  f("code", m.code);
  f("message", m.message);
}
KILN_FIELDS(Bye) {}
KILN_FIELDS(Job) {
  f("id", m.id);
  f("kind", m.kind);
  f("payload", m.payload);
  f("timeout_ms", m.timeout_ms);
}
KILN_FIELDS(WorkerShutdown) {}
KILN_FIELDS(Ready) {
  f("protocol", m.protocol);
  f("pid", m.pid);
  f("kinds", m.kinds);
  f("key_id", m.key_id);
  f("tools", m.tools);
}
KILN_FIELDS(WorkerResult) {
  f("id", m.id);
  f("ok", m.ok);
  f("value", m.value);
  f("error", m.error);
  f("run_us", m.run_us);
  f("retire", m.retire);
}
KILN_FIELDS(Phase) {
  f("id", m.id);
  f("phase", m.phase);
  f("pgid", m.pgid);
}
KILN_FIELDS(ToolJob) {
  f("id", m.id);
  f("payload", m.payload);
  f("timeout_ms", m.timeout_ms);
}
KILN_FIELDS(ToolReady) {
  f("protocol", m.protocol);
  f("pid", m.pid);
}
KILN_FIELDS(ToolResult) {
  f("id", m.id);
  f("ok", m.ok);
  f("value", m.value);
  f("error", m.error);
}
KILN_FIELDS(ZygoteFork) { f("worker", m.worker); }
KILN_FIELDS(ZygoteForked) { f("pid", m.pid); }
KILN_FIELDS(ZygoteRefused) { f("message", m.message); }
KILN_FIELDS(ZygoteExited) {
  f("pid", m.pid);
  f("status", m.status);
  f("signal", m.signal);
}
KILN_FIELDS(ExecRequest) {
  f("argv", m.argv);
  f("cwd", m.cwd);
  f("env", m.env);
  f("clear_env", m.clear_env);
  f("stdin", m.stdin_data);
  f("max_output_bytes", m.max_output_bytes);
  f("umask", m.umask);
  f("nice", m.nice);
  f("rlimits", m.rlimits);
}
KILN_FIELDS(ExecValue) {
  f("exit_code", m.exit_code);
  f("signal", m.signal);
  f("stdout", m.stdout_data);
  f("stderr", m.stderr_data);
  f("stdout_truncated", m.stdout_truncated);
  f("stderr_truncated", m.stderr_truncated);
  f("wall_us", m.wall_us);
  f("user_us", m.user_us);
  f("sys_us", m.sys_us);
  f("max_rss_kb", m.max_rss_kb);
}
#undef KILN_FIELDS

template <class M>
constexpr std::string_view kType = "";
template <>
constexpr std::string_view kType<Submit> = "submit";
template <>
constexpr std::string_view kType<Cancel> = "cancel";
template <>
constexpr std::string_view kType<Quiesce> = "quiesce";
template <>
constexpr std::string_view kType<Wakeup> = "wakeup";
template <>
constexpr std::string_view kType<StatsRequest> = "stats";
template <>
constexpr std::string_view kType<Shutdown> = "shutdown";
template <>
constexpr std::string_view kType<TraceRequest> = "trace";
template <>
constexpr std::string_view kType<Traced> = "traced";
template <>
constexpr std::string_view kType<Hello> = "hello";
template <>
constexpr std::string_view kType<Result> = "result";
template <>
constexpr std::string_view kType<Status> = "status";
template <>
constexpr std::string_view kType<Started> = "started";
template <>
constexpr std::string_view kType<Stats> = "stats";
template <>
constexpr std::string_view kType<Error> = "error";
template <>
constexpr std::string_view kType<Bye> = "bye";
template <>
constexpr std::string_view kType<Job> = "job";
template <>
constexpr std::string_view kType<WorkerShutdown> = "shutdown";
template <>
constexpr std::string_view kType<Ready> = "ready";
template <>
constexpr std::string_view kType<WorkerResult> = "result";
template <>
constexpr std::string_view kType<Phase> = "phase";
template <>
constexpr std::string_view kType<ToolJob> = "job";
template <>
constexpr std::string_view kType<ToolReady> = "ready";
template <>
constexpr std::string_view kType<ToolResult> = "result";
template <>
constexpr std::string_view kType<ZygoteFork> = "fork";
template <>
constexpr std::string_view kType<ZygoteForked> = "forked";
template <>
constexpr std::string_view kType<ZygoteRefused> = "refused";
template <>
constexpr std::string_view kType<ZygoteExited> = "exited";

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

// ---- Encoding ----

struct AppendSink {
  std::string* out;
  void write(const char* data, std::size_t n) { out->append(data, n); }
};

class Writer {
 public:
  explicit Writer(std::string& out) : sink_{&out}, pk_(sink_) {}

  template <class T>
  void operator()(std::string_view key, const T& v) {
    if constexpr (IsOptional<T>::value) {
      if (!v) return;
      (*this)(key, *v);
    } else {
      put(key);
      put(v);
    }
  }

  void put(std::string_view s) {
    pk_.pack_str(static_cast<uint32_t>(s.size()));
    pk_.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
  }
  void put(const std::string& s) { put(std::string_view(s)); }
  void put(uint64_t v) { pk_.pack_uint64(v); }
  void put(int64_t v) { pk_.pack_int64(v); }
  void put(bool v) { v ? pk_.pack_true() : pk_.pack_false(); }
  void put(const RawObject& raw) { sink_.out->append(raw.bytes); }
  void put(const Bytes& b) {
    pk_.pack_bin(static_cast<uint32_t>(b.bytes.size()));
    pk_.pack_bin_body(b.bytes.data(), static_cast<uint32_t>(b.bytes.size()));
  }
  void put(const StrMap& map) {
    pk_.pack_map(static_cast<uint32_t>(map.size()));
    for (const auto& [k, v] : map) {
      put(k);
      put(v);
    }
  }
  void put(const LimitMap& map) {
    pk_.pack_map(static_cast<uint32_t>(map.size()));
    for (const auto& [name, limit] : map) {
      put(name);
      pk_.pack_array(2);
      put(limit.first);
      put(limit.second);
    }
  }
  template <class T>
  void put(const std::vector<T>& items) {
    pk_.pack_array(static_cast<uint32_t>(items.size()));
    for (const T& item : items) put(item);
  }
  template <class T>
  requires std::is_class_v<T>
  void put(const T& record) {
    pk_.pack_map(count_fields(record));
    fields(*this, record);
  }
  void map_header(uint32_t n) { pk_.pack_map(n); }

  template <class T>
  static uint32_t count_fields(const T& record) {
    uint32_t n = 0;
    fields(
        [&n](std::string_view, const auto& v) {
          if constexpr (IsOptional<std::decay_t<decltype(v)>>::value) {
            n += v.has_value() ? 1 : 0;
          } else {
            ++n;
          }
        },
        record);
    return n;
  }

 private:
  AppendSink sink_;
  msgpack::packer<AppendSink> pk_;
};

template <class M>
void encode_message(const M& m, std::string& out) {
  const std::size_t start = out.size();
  append_frame_header(out, 0);
  Writer w(out);
  w.map_header(Writer::count_fields(m) + 1);
  w("type", kType<M>);
  fields(w, m);
  patch_frame_header(out, start);
}

// ---- Decoding ----

std::string expected(const char* what, const msgpack::object& o) {
  return std::string("expected ") + what + ", got " + mp::type_name(o);
}

// Each convert() returns "" on success, else what is wrong (a nested field's name first).
std::string convert(const msgpack::object& o, uint64_t& out) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) return expected("uint", o);
  out = o.via.u64;
  return "";
}
std::string convert(const msgpack::object& o, int64_t& out) {
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    out = o.via.i64;
    return "";
  }
  if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= static_cast<uint64_t>(INT64_MAX)) {
    out = static_cast<int64_t>(o.via.u64);
    return "";
  }
  return expected("int", o);
}
std::string convert(const msgpack::object& o, bool& out) {
  if (o.type != msgpack::type::BOOLEAN) return expected("bool", o);
  out = o.via.boolean;
  return "";
}
std::string convert(const msgpack::object& o, std::string& out) {
  if (o.type != msgpack::type::STR) return expected("str", o);
  out.assign(o.via.str.ptr, o.via.str.size);
  return "";
}
std::string convert(const msgpack::object& o, Bytes& out) {
  if (o.type != msgpack::type::BIN) return expected("bin", o);
  out.bytes.assign(o.via.bin.ptr, o.via.bin.size);
  return "";
}
// The maps of a payload: any key or value of the wrong type is "expected map of ...".
std::string convert(const msgpack::object& o, StrMap& out) {
  constexpr const char* kWhat = "map of str to str";
  if (o.type != msgpack::type::MAP) return expected(kWhat, o);
  out.clear();
  out.reserve(o.via.map.size);  // the objects exist: unpacking was bounded
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    const msgpack::object& k = o.via.map.ptr[i].key;
    const msgpack::object& v = o.via.map.ptr[i].val;
    if (k.type != msgpack::type::STR || v.type != msgpack::type::STR) {
      return std::string("expected ") + kWhat;
    }
    out.emplace_back(std::string(k.via.str.ptr, k.via.str.size),
                     std::string(v.via.str.ptr, v.via.str.size));
  }
  return "";
}
std::string convert(const msgpack::object& o, LimitMap& out) {
  constexpr const char* kWhat = "map of str to [uint, uint]";
  if (o.type != msgpack::type::MAP) return expected(kWhat, o);
  out.clear();
  out.reserve(o.via.map.size);
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    const msgpack::object& k = o.via.map.ptr[i].key;
    const msgpack::object& v = o.via.map.ptr[i].val;
    const bool pair = v.type == msgpack::type::ARRAY && v.via.array.size == 2 &&
                      v.via.array.ptr[0].type == msgpack::type::POSITIVE_INTEGER &&
                      v.via.array.ptr[1].type == msgpack::type::POSITIVE_INTEGER;
    if (k.type != msgpack::type::STR || !pair) return std::string("expected ") + kWhat;
    out.emplace_back(std::string(k.via.str.ptr, k.via.str.size),
                     std::pair(v.via.array.ptr[0].via.u64, v.via.array.ptr[1].via.u64));
  }
  return "";
}
template <class T>
requires std::is_class_v<T> std::string convert(const msgpack::object& o, T& out);

template <class T>
std::string convert(const msgpack::object& o, std::vector<T>& out) {
  if (o.type != msgpack::type::ARRAY) return expected("array", o);
  out.resize(o.via.array.size);
  for (uint32_t i = 0; i < o.via.array.size; ++i) {
    std::string err = convert(o.via.array.ptr[i], out[i]);
    if (!err.empty()) return "[" + std::to_string(i) + "]: " + err;
  }
  return "";
}

// "key" joined with what convert() said of its value: "key: expected str, got uint",
// "key[2]: expected str, got uint", "key.code: missing".
std::string join_path(std::string_view key, const std::string& err) {
  if (err.rfind("expected", 0) == 0) return std::string(key) + ": " + err;
  if (err[0] == '[') return std::string(key) + err;
  return std::string(key) + "." + err;
}

// Reads a record's fields from a msgpack map object (JobError, WorkerInfo).
template <class T>
requires std::is_class_v<T> std::string convert(const msgpack::object& o, T& out) {
  if (o.type != msgpack::type::MAP) return expected("map", o);
  std::string err;
  fields(
      [&](std::string_view key, auto& field) {
        if (!err.empty()) return;
        const msgpack::object* value = nullptr;
        for (uint32_t i = 0; i < o.via.map.size; ++i) {
          const msgpack::object& k = o.via.map.ptr[i].key;
          if (k.type == msgpack::type::STR &&
              std::string_view(k.via.str.ptr, k.via.str.size) == key) {
            value = &o.via.map.ptr[i].val;
          }
        }
        using Field = std::decay_t<decltype(field)>;
        if (value == nullptr) {
          if constexpr (!IsOptional<Field>::value) err = std::string(key) + ": missing";
          return;
        }
        std::string e;
        if constexpr (IsOptional<Field>::value) {
          e = convert(*value, field.emplace());
        } else {
          e = convert(*value, field);
        }
        if (!e.empty()) err = join_path(key, e);
      },
      out);
  return err;
}

// Every top-level key of every message of both links, sorted: taken from the field lists
// themselves, so a field added to a message is known here at once.
bool is_known_key(std::string_view key) {
  static const std::vector<std::string_view> known = [] {
    std::vector<std::string_view> keys = {"type"};
    auto collect = [&keys](auto message) {
      fields([&keys](std::string_view k, const auto&) { keys.push_back(k); }, message);
    };
    (collect(Submit{}), collect(Cancel{}), collect(Quiesce{}), collect(Wakeup{}),
     collect(StatsRequest{}), collect(Shutdown{}), collect(TraceRequest{}), collect(Traced{}),
     collect(Hello{}), collect(Result{}), collect(Status{}), collect(Started{}), collect(Stats{}),
     collect(Error{}), collect(Bye{}), collect(Job{}), collect(WorkerShutdown{}), collect(Ready{}),
     collect(WorkerResult{}), collect(Phase{}), collect(ToolJob{}), collect(ToolReady{}),
     collect(ToolResult{}), collect(ZygoteFork{}), collect(ZygoteForked{}),
     collect(ZygoteRefused{}), collect(ZygoteExited{}));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
  }();
  return std::binary_search(known.begin(), known.end(), key);
}

// The top-level map of one body: its keys and the raw bytes of each value.
class Body {
 public:
  // Validates the whole body: one complete map, nothing after it, str keys, no key twice, depth
  // and element counts bounded by the body (see msgpack_scan.h).
  static kiln::Expected<Body> parse(std::string_view body) {
    std::size_t end = 0;
    if (Expected<void> scanned = mp::skip_object(body, end, mp::kMaxDepth); !scanned) {
      return fail("body: " + scanned.error());
    }
    if (end != body.size()) {
      return fail("body: " + std::to_string(body.size() - end) +
                  " bytes after the message (a body is exactly one map)");
    }
    mp::Header h;
    (void)mp::read_header(body, 0, h);  // skip_object proved the bytes are there
    if (h.kind != mp::Kind::kMap) {
      return fail(std::string("body: expected map, got ") + mp::kind_name(h.kind));
    }
    Body b;
    b.entries_.reserve(std::min<uint64_t>(h.size, 16));
    std::size_t pos = h.header_len;
    for (uint64_t i = 0; i < h.size; ++i) {
      mp::Header kh;
      (void)mp::read_header(body, pos, kh);
      if (kh.kind != mp::Kind::kStr) {
        return fail(std::string("body: map keys must be str, got ") + mp::kind_name(kh.kind));
      }
      const std::string_view key = body.substr(pos + kh.header_len, kh.size);
      pos += kh.header_len + kh.size;
      const std::size_t value_start = pos;
      (void)mp::skip_object(body, pos, mp::kMaxDepth);
      // Only keys some message has are kept (receivers ignore the others): at most a few dozen,
      // so the duplicate check and find() cost a constant per key, and a body of n keys O(n).
      // (Checking every key against all before it once took 82 s for 160,000 keys.)
      if (!is_known_key(key)) continue;
      if (b.find(key) != nullptr) return fail("body: key \"" + std::string(key) + "\" twice");
      b.entries_.emplace_back(key, body.substr(value_start, pos - value_start));
    }
    return b;
  }

  const std::string_view* find(std::string_view key) const {
    for (const auto& [k, v] : entries_) {
      if (k == key) return &v;
    }
    return nullptr;
  }

 private:
  std::vector<std::pair<std::string_view, std::string_view>> entries_;
};

// Reads a message's fields from a Body; the first problem is kept in error().
class Reader {
 public:
  Reader(const Body& body, std::string_view type) : body_(body), type_(type) {}

  template <class T>
  void operator()(std::string_view key, T& out) {
    if (!error_.empty()) return;
    const std::string_view* raw = body_.find(key);
    if (raw == nullptr) {
      if constexpr (!IsOptional<T>::value)
        error_ = std::string(type_) + "." + std::string(key) + ": missing";
      return;
    }
    if constexpr (IsOptional<T>::value) {
      read(key, *raw, out.emplace());
    } else {
      read(key, *raw, out);
    }
  }

  const std::string& error() const { return error_; }

 private:
  void read(std::string_view, std::string_view raw, RawObject& out) { out.bytes.assign(raw); }

  template <class T>
  void read(std::string_view key, std::string_view raw, T& out) {
    // Bounded twice: the body scan proved the counts are honest; the limits say so again.
    const std::size_t n = raw.size();
    const msgpack::unpack_limit limit(n, n / 2, n, n, n, mp::kMaxDepth);
    std::size_t off = 0;
    bool referenced = false;
    const msgpack::object o = msgpack::unpack(zone_, raw.data(), n, off, referenced,
                                              mp::reference_everything, nullptr, limit);
    if (std::string err = convert(o, out); !err.empty()) {
      error_ = std::string(type_) + "." + join_path(key, err);
    }
  }

  const Body& body_;
  std::string_view type_;
  msgpack::zone zone_{1024};  // typed fields are small; the default chunk is 8 KiB
  std::string error_;
};

// Rules beyond "the right fields of the right types": a result of any link (client, worker,
// tool) that says it failed says why.
template <class M>
std::string check(const M& m) {
  if constexpr (requires {
                  m.ok;
                  m.error;
                }) {
    return !m.ok && !m.error ? "result.error: missing (required when ok is false)" : "";
  } else {
    return "";
  }
}

template <class V, std::size_t I = 0>
kiln::Expected<V> decode_type(std::string_view type, const Body& body) {
  if constexpr (I == std::variant_size_v<V>) {
    // The client's own string, escaped and cut: it goes into the log and back to the client.
    return fail("unknown message type \"" + printable(type, 64) + "\"");
  } else {
    using M = std::variant_alternative_t<I, V>;
    if (type != kType<M>) return decode_type<V, I + 1>(type, body);
    M m;
    Reader reader(body, type);
    fields(reader, m);
    if (!reader.error().empty()) return fail(reader.error());
    if (std::string err = check(m); !err.empty()) return fail(err);
    return V(std::move(m));
  }
}

template <class V>
kiln::Expected<V> decode(std::string_view bytes) {
  try {
    kiln::Expected<Body> body = Body::parse(bytes);
    if (!body) return fail(body.error());
    const std::string_view* type_raw = body->find("type");
    if (type_raw == nullptr) return fail("body: no \"type\" key");
    mp::Header h;
    (void)mp::read_header(*type_raw, 0, h);
    if (h.kind != mp::Kind::kStr) {
      return fail(std::string("type: expected str, got ") + mp::kind_name(h.kind));
    }
    return decode_type<V>(type_raw->substr(h.header_len), *body);
  } catch (const std::exception& e) {
    // The scan makes these unreachable in practice; the decoder still never throws.
    return fail(std::string("body: ") + e.what());
  }
}

// A job's payload or value of a built-in kind: `whole` names the object ("exec.payload"), `prefix`
// its fields ("exec."). Counted before it is unpacked (mp::unpack_counted).
template <class T>
kiln::Expected<T> decode_record(const RawObject& raw, const std::string& whole,
                                const std::string& prefix) {
  Expected<msgpack::object_handle> unpacked = mp::unpack_counted(raw.bytes, kMaxPayloadObjects);
  if (!unpacked) return fail(whole + ": " + unpacked.error());
  const msgpack::object& o = unpacked->get();
  if (o.type != msgpack::type::MAP) return fail(whole + ": " + expected("map", o));
  T m;
  if (std::string err = convert(o, m); !err.empty()) return fail(prefix + err);
  return m;
}

template <class T>
RawObject encode_record(const T& m) {
  RawObject raw;
  Writer(raw.bytes).put(m);
  return raw;
}

template <class V>
std::string_view type_of(const V& m) {
  return std::visit([](const auto& msg) { return kType<std::decay_t<decltype(msg)>>; }, m);
}

}  // namespace

kiln::Expected<ClientRequest> decode_client_request(std::string_view body) {
  return decode<ClientRequest>(body);
}
kiln::Expected<ClientEvent> decode_client_event(std::string_view body) {
  return decode<ClientEvent>(body);
}
kiln::Expected<WorkerCommand> decode_worker_command(std::string_view body) {
  return decode<WorkerCommand>(body);
}
kiln::Expected<WorkerEvent> decode_worker_event(std::string_view body) {
  return decode<WorkerEvent>(body);
}
kiln::Expected<ToolCommand> decode_tool_command(std::string_view body) {
  return decode<ToolCommand>(body);
}
kiln::Expected<ToolEvent> decode_tool_event(std::string_view body) {
  return decode<ToolEvent>(body);
}
kiln::Expected<ZygoteRequest> decode_zygote_request(std::string_view body) {
  return decode<ZygoteRequest>(body);
}
kiln::Expected<ZygoteEvent> decode_zygote_event(std::string_view body) {
  return decode<ZygoteEvent>(body);
}

void encode(const Submit& m, std::string& out) { encode_message(m, out); }
void encode(const Cancel& m, std::string& out) { encode_message(m, out); }
void encode(const Quiesce& m, std::string& out) { encode_message(m, out); }
void encode(const Wakeup& m, std::string& out) { encode_message(m, out); }
void encode(const StatsRequest& m, std::string& out) { encode_message(m, out); }
void encode(const TraceRequest& m, std::string& out) { encode_message(m, out); }
void encode(const Traced& m, std::string& out) { encode_message(m, out); }
void encode(const Shutdown& m, std::string& out) { encode_message(m, out); }
void encode(const Hello& m, std::string& out) { encode_message(m, out); }
void encode(const Result& m, std::string& out) { encode_message(m, out); }
void encode(const Status& m, std::string& out) { encode_message(m, out); }
void encode(const Started& m, std::string& out) { encode_message(m, out); }
void encode(const Stats& m, std::string& out) { encode_message(m, out); }
void encode(const Error& m, std::string& out) { encode_message(m, out); }
void encode(const Bye& m, std::string& out) { encode_message(m, out); }
void encode(const Job& m, std::string& out) { encode_message(m, out); }
void encode(const WorkerShutdown& m, std::string& out) { encode_message(m, out); }
void encode(const Ready& m, std::string& out) { encode_message(m, out); }
void encode(const WorkerResult& m, std::string& out) { encode_message(m, out); }
void encode(const Phase& m, std::string& out) { encode_message(m, out); }
void encode(const ToolJob& m, std::string& out) { encode_message(m, out); }
void encode(const ToolReady& m, std::string& out) { encode_message(m, out); }
void encode(const ToolResult& m, std::string& out) { encode_message(m, out); }
void encode(const ZygoteFork& m, std::string& out) { encode_message(m, out); }
void encode(const ZygoteForked& m, std::string& out) { encode_message(m, out); }
void encode(const ZygoteRefused& m, std::string& out) { encode_message(m, out); }
void encode(const ZygoteExited& m, std::string& out) { encode_message(m, out); }

RawObject encode_exec_request(const ExecRequest& m) { return encode_record(m); }
RawObject encode_exec_value(const ExecValue& m) { return encode_record(m); }
kiln::Expected<ExecRequest> decode_exec_request(const RawObject& raw) {
  return decode_record<ExecRequest>(raw, "exec.payload", "exec.");
}
kiln::Expected<ExecValue> decode_exec_value(const RawObject& raw) {
  return decode_record<ExecValue>(raw, "exec.value", "exec.value.");
}

std::string_view type_name(const ClientRequest& m) { return type_of(m); }
std::string_view type_name(const ClientEvent& m) { return type_of(m); }
std::string_view type_name(const WorkerCommand& m) { return type_of(m); }
std::string_view type_name(const WorkerEvent& m) { return type_of(m); }
std::string_view type_name(const ToolCommand& m) { return type_of(m); }
std::string_view type_name(const ToolEvent& m) { return type_of(m); }

}  // namespace kiln::proto
