#pragma once
// Dropout decisions drawn from a counter instead of a generator's stream: element e of a
// tensor is kept or dropped by a hash of (seed, e). A kernel therefore needs no mask tensor:
// its backward pass recomputes the forward's decisions from the seed, any thread computes
// any element's, and the result does not depend on the thread count. The seed is one draw
// from the thread's generator (nn/random.h), so torch::manual_seed still fixes every mask.
// Element e's decision is 16 bits (lane e % 4) of splitmix64(seed + (e / 4) * golden):
// p is honoured to 1/65536, and one hash serves four elements.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace j2v::nn {

// SplitMix64's finaliser: a bijective mix whose outputs for consecutive counters pass
// BigCrush, ample for dropout masks.
inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct CounterDropout {
  static constexpr int64_t kPerHash = 4;  // decisions per 64-bit hash, 16 bits each
  static constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

  uint64_t seed = 0;
  uint32_t drop_below = 0;  // a 16-bit draw below this drops the element
  double scale = 1;         // 1 / (1 - p), a kept element's factor

  // Probability p with a fresh seed from the thread's generator.
  static CounterDropout draw(double p);
  // The same decisions again (a backward pass's), from what forward saved.
  static CounterDropout replay(uint64_t seed, double p) {
    return {seed, static_cast<uint32_t>(p * 65536.0 + 0.5), 1.0 / (1.0 - p)};
  }

  bool active() const { return drop_below > 0; }
  uint64_t hash(uint64_t hash_index) const { return splitmix64_mix(seed + hash_index * kGolden); }
  // out[k] = scale or 0: the decisions of elements first .. first + n - 1. Written as
  // separate loops over whole hashes and then over elements (the draws being the hashes'
  // little-endian 16-bit lanes), so that both vectorise; one loop that hashed as it went
  // cost more than the attention it masked.
  template <typename T>
  void keep_scales(uint64_t first, int64_t n, T* out) const {
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    static_assert(sizeof(Bits) == sizeof(T), "float or double");
    constexpr int64_t kChunk = 256;  // elements per pass
    alignas(64) uint64_t hashes[kChunk / kPerHash + 1];
    uint16_t draws[(kChunk / kPerHash + 1) * kPerHash];
    const T kept = static_cast<T>(scale);
    Bits kept_bits;
    std::memcpy(&kept_bits, &kept, sizeof kept);
    for (int64_t done = 0; done < n; done += kChunk) {
      const int64_t count = std::min(kChunk, n - done);
      const uint64_t e0 = first + static_cast<uint64_t>(done), h0 = e0 / kPerHash;
      const int64_t n_hashes = static_cast<int64_t>((e0 + static_cast<uint64_t>(count) - 1) / kPerHash - h0) + 1;
      for (int64_t k = 0; k < n_hashes; ++k) hashes[k] = hash(h0 + static_cast<uint64_t>(k));
      std::memcpy(draws, hashes, sizeof(uint64_t) * static_cast<size_t>(n_hashes));
      const uint16_t* element_draws = draws + (e0 - h0 * kPerHash);
      T* row = out + done;
      for (int64_t j = 0; j < count; ++j) {
        Bits bits = kept_bits & (Bits(0) - static_cast<Bits>(element_draws[j] >= drop_below));
        std::memcpy(row + j, &bits, sizeof bits);
      }
    }
  }
};

}  // namespace j2v::nn
