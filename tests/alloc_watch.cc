#include "tests/alloc_watch.h"

#include <atomic>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KILN_ALLOC_WATCH 0
#else
#define KILN_ALLOC_WATCH 1
#endif

namespace {
std::atomic<bool> g_armed{false};
std::atomic<std::size_t> g_largest{0};

[[maybe_unused]] void record(std::size_t n) {
  if (!g_armed.load(std::memory_order_relaxed)) return;
  std::size_t seen = g_largest.load(std::memory_order_relaxed);
  while (n > seen && !g_largest.compare_exchange_weak(seen, n)) {
  }
}
}  // namespace

#if KILN_ALLOC_WATCH
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);

void* malloc(std::size_t n) {
  record(n);
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t n) {
  record(count * n);
  return __libc_calloc(count, n);
}
void* realloc(void* p, std::size_t n) {
  record(n);
  return __libc_realloc(p, n);
}
}
#endif

namespace kiln::testing {

bool alloc_watch_available() { return KILN_ALLOC_WATCH != 0; }

void alloc_watch_arm() {
  g_largest = 0;
  g_armed = true;
}

std::size_t alloc_watch_disarm() {
  g_armed = false;
  return g_largest.load();
}

}  // namespace kiln::testing
