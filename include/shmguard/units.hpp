// mod_shmguard core: sizes, durations and percentages as admins write them, and human formatting.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shmguard {

// "64M", "1G", "512K", "1048576" (bytes). K/M/G/T are KiB/MiB/GiB/TiB; an optional trailing
// "B"/"iB" is accepted ("64MiB", "64MB" both mean 64 MiB). nullopt on anything else or on overflow.
std::optional<std::uint64_t> parse_size(std::string_view s);
// "250ms", "1s", "2m" (or "2min"), "15" (a bare number is seconds). Result in ms, > 0 not
// enforced here. nullopt on anything else or on overflow.
std::optional<std::uint64_t> parse_duration_ms(std::string_view s);
// "90%", "12.5%" -> 0..100. nullopt unless it ends in % and lies in [0, 100].
std::optional<double> parse_percent(std::string_view s);

// "12.0 MiB", "1.0 GiB", "512 B" (binary units, one decimal above bytes).
std::string human_bytes(std::uint64_t bytes);

}  // namespace shmguard
