// A log-linear histogram of microsecond durations for the stats percentiles: 16 sub-buckets per
// power of two, so any percentile is within 1/16 (6%) of the true value, in fixed memory.
#pragma once

#include <array>
#include <cstdint>

namespace kiln::supervisor {

class Histogram {
 public:
  void record(uint64_t value);
  // The value at or below which `percent` of the records fall (upper edge of its bucket, capped
  // by the largest value seen); 0 when empty.
  uint64_t percentile(double percent) const;
  uint64_t max() const { return max_; }
  uint64_t count() const { return count_; }

 private:
  static constexpr int kSubBits = 4;
  static constexpr int kBuckets = (64 - kSubBits + 1) << kSubBits;
  static std::size_t index(uint64_t value);
  static uint64_t upper_edge(std::size_t index);

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace kiln::supervisor
