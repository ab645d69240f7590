#pragma once
// Card payments whose label is an interaction of two fields (an expensive purchase at a
// jewelry or electronics merchant is fraud): what the model tests learn and score.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace j2v::testing {

inline std::vector<std::string> fraud_records(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> out;
  const char* merchants[] = {"books", "coffee", "jewelry", "electronics"};
  for (int i = 0; i < n; ++i) {
    std::string merchant = merchants[rng() % 4];
    double amount = static_cast<double>(rng() % 500);
    bool fraud = (merchant == "jewelry" || merchant == "electronics") && amount > 250;
    out.push_back(nlohmann::json{{"amount", amount}, {"merchant", merchant}, {"fraud", fraud ? "yes" : "no"}}.dump());
  }
  return out;
}

}  // namespace j2v::testing
