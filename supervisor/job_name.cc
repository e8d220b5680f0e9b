#include "supervisor/job_name.h"

#include <msgpack.hpp>

#include <array>
#include <string_view>
#include <vector>

#include "common/msgpack_scan.h"
#include "common/text.h"

namespace kiln::supervisor {
namespace {

// A file's name is at most NAME_MAX (255) bytes; a client's argument may be any length, and a
// name goes into every `stats` reply while its job runs.
constexpr std::size_t kMaxNameBytes = 255;

std::string basename_of(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return shortened(slash == std::string_view::npos ? path : path.substr(slash + 1), kMaxNameBytes);
}

bool looks_like_source(std::string_view arg) {
  static constexpr std::array<std::string_view, 16> kExtensions = {
      ".c",  ".cc", ".cp", ".cpp", ".cxx", ".c++", ".C",   ".m",
      ".mm", ".s",  ".S",  ".sx",  ".cu",  ".f",   ".f90", ".F90"};
  if (arg.empty() || arg[0] == '-') return false;
  const std::size_t dot = arg.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || arg[dot - 1] == '/') return false;
  const std::string_view ext = arg.substr(dot);
  for (std::string_view e : kExtensions) {
    if (ext == e) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> exec_argv(const proto::RawObject& payload) {
  std::vector<std::string> argv;
  try {
    // Bounded like any untrusted body: the payload is a client's.
    const msgpack::unpack_limit limit(1 << 16, 1 << 16, 1 << 20, 1 << 20, 1 << 20, 8);
    const msgpack::object_handle h =
        msgpack::unpack(payload.bytes.data(), payload.bytes.size(), nullptr, nullptr, limit);
    const msgpack::object* v = mp::field(h.get(), "argv");
    if (v == nullptr || v->type != msgpack::type::ARRAY) return argv;
    for (uint32_t j = 0; j < v->via.array.size; ++j) {
      const msgpack::object& a = v->via.array.ptr[j];
      if (a.type == msgpack::type::STR) argv.emplace_back(a.via.str.ptr, a.via.str.size);
    }
  } catch (const std::exception&) {
    argv.clear();
  }
  return argv;
}

std::string job_name(const std::string& kind, const proto::RawObject& payload) {
  if (kind != "exec") return kind;
  const std::vector<std::string> argv = exec_argv(payload);
  for (std::size_t i = 1; i < argv.size(); ++i) {
    if (looks_like_source(argv[i])) return basename_of(argv[i]);
  }
  return argv.empty() ? kind : basename_of(argv[0]);
}

}  // namespace kiln::supervisor
