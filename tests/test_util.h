#pragma once
// Helpers shared by the tests: temporary directories and the optional shared datasets.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace j2v::testing {

inline std::filesystem::path temp_dir(const std::string& name) {
  static std::mt19937_64 rng(std::random_device{}());
  auto dir = std::filesystem::temp_directory_path() / ("j2v_test_" + name + "_" + std::to_string(rng()));
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_lines(const std::filesystem::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
}

// ../shared/datasets next to the repository, when present (tests skip without it).
inline std::filesystem::path shared_dataset(const std::string& name) {
  return std::filesystem::path(JSON2VEC_SOURCE_DIR) / ".." / "shared" / "datasets" / name;
}

inline std::filesystem::path source_path(const std::string& relative) {
  return std::filesystem::path(JSON2VEC_SOURCE_DIR) / relative;
}

}  // namespace j2v::testing
