// Records the largest single heap allocation made while armed, so tests can prove that hostile
// input is rejected without a large allocation (msgpack-c allocates with malloc, and a caught
// std::bad_alloc would otherwise hide a bomb). Works in builds without sanitizers, which
// interpose malloc themselves; available() says whether it is active.
#pragma once

#include <cstddef>

namespace kiln::testing {

bool alloc_watch_available();
void alloc_watch_arm();
// Disarms and returns the largest request seen since arming.
std::size_t alloc_watch_disarm();

}  // namespace kiln::testing
