#include "supervisor/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace kiln::supervisor {

std::size_t Histogram::index(uint64_t value) {
  if (value < (1u << kSubBits)) return static_cast<std::size_t>(value);
  const int exponent = 63 - std::countl_zero(value) - kSubBits + 1;  // >= 1
  const uint64_t sub = (value >> (exponent - 1)) & ((1u << kSubBits) - 1);
  return (static_cast<std::size_t>(exponent) << kSubBits) + sub;
}

uint64_t Histogram::upper_edge(std::size_t index) {
  if (index < (1u << kSubBits)) return index;
  const std::size_t exponent = index >> kSubBits;
  const uint64_t sub = index & ((1u << kSubBits) - 1);
  const uint64_t base = (uint64_t{1} << kSubBits | sub) << (exponent - 1);
  return base + (uint64_t{1} << (exponent - 1)) - 1;
}

void Histogram::record(uint64_t value) {
  ++counts_[index(value)];
  ++count_;
  max_ = std::max(max_, value);
}

uint64_t Histogram::percentile(double percent) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
  uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= std::max<uint64_t>(rank, 1)) return std::min(upper_edge(i), max_);
  }
  return max_;
}

}  // namespace kiln::supervisor
