// The chart's and the history's unit tests: a sample with a finite binding limit.
#pragma once

#include <cstdint>
#include <string_view>

#include "shmguard/history.hpp"

namespace shmguard_test {

inline shmguard::HistorySample bounded(std::uint64_t headroom, std::uint64_t limit = 1ull << 30,
                                       std::uint64_t refused = 0, std::uint64_t translated = 0,
                                       std::string_view binding = "beancounter:shmpages") {
  shmguard::HistorySample s;
  s.headroom = headroom;
  s.binding = binding;
  s.limit = limit;
  s.used = limit - headroom;
  s.refused_total = refused;
  s.translated_total = translated;
  return s;
}

}  // namespace shmguard_test
