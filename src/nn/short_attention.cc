#include "nn/short_attention.h"

#include "nn/counter_dropout.h"
#include "nn/vector_math.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace j2v::nn {

namespace {

// Longer key sequences go to GEMM-based attention, where the products are big enough for BLAS.
constexpr int64_t kMaxKeys = 128;
// An absent key scores this, as masked_fill does in the general path: a row with every key
// absent attends uniformly rather than producing NaN.
constexpr double kAbsentScore = -1e9;

// A [B, h, L, dh] operand addressed through its strides (the caller's views are permutations
// of a fused projection; copying them to contiguous tensors first would cost as much as the
// attention itself).
template <typename T>
struct Strided4 {
  T* data;
  int64_t b, h, l, d;
  explicit Strided4(const torch::Tensor& t)
      : data(t.data_ptr<T>()), b(t.stride(0)), h(t.stride(1)), l(t.stride(2)), d(t.stride(3)) {}
  T* at(int64_t bi, int64_t hi, int64_t li) const { return data + bi * b + hi * h + li * l; }
};

template <typename T>
J2V_ALWAYS_INLINE inline T dot(const T* x, int64_t x_step, const T* y, int64_t y_step, int64_t n) {
  T s = 0;
  if (x_step == 1 && y_step == 1) {
    // Eight running sums: a single one is a dependency chain the compiler may not reorder
    // (floating-point addition is not associative), so it would not vectorise.
    T lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t e = 0;
    for (; e + 8 <= n; e += 8)
      for (int u = 0; u < 8; ++u) lanes[u] += x[e + u] * y[e + u];
    for (; e < n; ++e) s += x[e] * y[e];
    for (int u = 0; u < 8; ++u) s += lanes[u];
  } else {
    for (int64_t e = 0; e < n; ++e) s += x[e * x_step] * y[e * y_step];
  }
  return s;
}

// out[e] += a * x[e]
template <typename T>
J2V_ALWAYS_INLINE inline void axpy(T a, const T* x, int64_t x_step, T* out, int64_t n) {
  if (x_step == 1) {
    for (int64_t e = 0; e < n; ++e) out[e] += a * x[e];
  } else {
    for (int64_t e = 0; e < n; ++e) out[e] += a * x[e * x_step];
  }
}

// The operands' sizes, and the grain of the parallel loop over (batch, head) pairs.
struct Shape {
  int64_t B, H, Q, T, D;
  explicit Shape(const torch::Tensor& q, const torch::Tensor& k)
      : B(q.size(0)), H(q.size(1)), Q(q.size(2)), T(k.size(2)), D(q.size(3)) {}
  int64_t pairs() const { return B * H; }
  int64_t grain() const { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, Q * T * D)); }
};

// A [B, h, L, dh] tensor whose memory is [B, L, h, dh]: heads merge with a view afterwards.
// Uninitialised: the kernels write every row of their outputs and gradients (unread
// queries' rows with zeros), which saves a pass over them (zeroing the gradient of an item
// branch's fused projection was 2.6% of a nested training step).
torch::Tensor heads_last_layout(int64_t B, int64_t H, int64_t L, int64_t D, const torch::TensorOptions& options) {
  return torch::empty({B, L, H, D}, options).permute({0, 2, 1, 3});
}

// Sets a row of n elements, `step` apart, to zero.
template <typename T>
inline void zero_row(T* row, int64_t step, int64_t n) {
  for (int64_t e = 0; e < n; ++e) row[e * step] = 0;
}

// The kernels' operands as raw pointers and strides.
template <typename T>
struct PairArgs {
  Shape s;
  Strided4<T> Q, K, V;
  const bool* absent;  // [B, T], or null
  const bool* unread;  // [B, Q]: queries whose output no one reads (left zero, no gradient), or null
  CounterDropout dropout;  // over the [B*h, Q, T] attention weights; inactive without dropout
  T scale;
};

// The keep factors (scale or 0; the same in forward and backward) of pair n's query i over
// its keys, or null without dropout. A pair's weights are Q * T consecutive elements of the
// dropout's [B*h, Q, T]: when they fit, they are drawn for the whole pair at once, since
// drawing a few keys' worth per query cost more than the attention at four keys.
template <typename T>
class KeepRows {
 public:
  J2V_ALWAYS_INLINE const T* of(const PairArgs<T>& a, int64_t n, int64_t i) {
    if (!a.dropout.active()) return nullptr;
    const int64_t pair_elements = a.s.Q * a.s.T;
    if (pair_elements > kPairElements) {
      a.dropout.keep_scales(static_cast<uint64_t>((n * a.s.Q + i) * a.s.T), a.s.T, buffer_);
      return buffer_;
    }
    if (n != pair_) {
      a.dropout.keep_scales(static_cast<uint64_t>(n * pair_elements), pair_elements, buffer_);
      pair_ = n;
    }
    return buffer_ + i * a.s.T;
  }

 private:
  static constexpr int64_t kPairElements = 2048;
  static_assert(kPairElements >= kMaxKeys, "a row must fit");
  T buffer_[kPairElements];
  int64_t pair_ = -1;
};

// An unread query: its weights and its output row are zero (backward skips it too, leaving
// its gradient row zero).
template <typename T>
J2V_ALWAYS_INLINE inline void skip_query(T* p_row, int64_t T_keys, T* out_row, int64_t out_step, int64_t D) {
  for (int64_t j = 0; j < T_keys; ++j) p_row[j] = 0;
  zero_row(out_row, out_step, D);
}

// Forward for pairs [begin, end): out = dropout(softmax(scale * q k^T, absent keys
// excluded)) v. Writes the attention weights before dropout to P [B*h, Q, T].
template <typename T>
J2V_ALWAYS_INLINE inline void forward_pairs(const PairArgs<T>& a, const Strided4<T>& O, T* P, int64_t begin,
                                            int64_t end) {
  const Shape& s = a.s;
  T scores[kMaxKeys];
  KeepRows<T> keep_rows;
  for (int64_t n = begin; n < end; ++n) {
    int64_t b = n / s.H, h = n % s.H;
    const bool* absent_b = a.absent ? a.absent + b * s.T : nullptr;
    const bool* unread_b = a.unread ? a.unread + b * s.Q : nullptr;
    for (int64_t i = 0; i < s.Q; ++i) {
      if (unread_b && unread_b[i]) {
        skip_query(P + (n * s.Q + i) * s.T, s.T, O.at(b, h, i), O.d, s.D);
        continue;
      }
      const T* qi = a.Q.at(b, h, i);
      T top = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < s.T; ++j) {
        scores[j] = absent_b && absent_b[j] ? static_cast<T>(kAbsentScore)
                                             : a.scale * dot(qi, a.Q.d, a.K.at(b, h, j), a.K.d, s.D);
        top = std::max(top, scores[j]);
      }
      T total = 0;
      for (int64_t j = 0; j < s.T; ++j) total += (scores[j] = std::exp(scores[j] - top));
      T* p_row = P + (n * s.Q + i) * s.T;
      const T* keep_row = keep_rows.of(a, n, i);
      T* oi = O.at(b, h, i);  // dense in dh: allocated by this file
      zero_row(oi, 1, s.D);
      for (int64_t j = 0; j < s.T; ++j) {
        p_row[j] = scores[j] / total;
        T weight = keep_row ? p_row[j] * keep_row[j] : p_row[j];
        if (weight != 0) axpy(weight, a.V.at(b, h, j), a.V.d, oi, s.D);
      }
    }
  }
}

// Backward for pairs [begin, end). With weights P (before dropout), kept weights W = P * keep:
//   dV_j += W_ij dO_i;  dP_ij = keep_ij (dO_i . v_j);  dS_ij = P_ij (dP_ij - sum_j' P_ij' dP_ij')
//   dQ_i = scale sum_j dS_ij k_j;  dK_j += scale dS_ij q_i  (dS is zero at absent keys).
template <typename T>
J2V_ALWAYS_INLINE inline void backward_pairs(const PairArgs<T>& a, const T* P, const Strided4<T>& dO,
                                             const Strided4<T>& dQ, const Strided4<T>& dK, const Strided4<T>& dV,
                                             int64_t begin, int64_t end) {
  const Shape& s = a.s;
  T d_weights[kMaxKeys];
  KeepRows<T> keep_rows;
  for (int64_t n = begin; n < end; ++n) {
    int64_t b = n / s.H, h = n % s.H;
    const bool* absent_b = a.absent ? a.absent + b * s.T : nullptr;
    const bool* unread_b = a.unread ? a.unread + b * s.Q : nullptr;
    for (int64_t j = 0; j < s.T; ++j) {
      zero_row(dK.at(b, h, j), dK.d, s.D);
      zero_row(dV.at(b, h, j), dV.d, s.D);
    }
    for (int64_t i = 0; i < s.Q; ++i) zero_row(dQ.at(b, h, i), dQ.d, s.D);
    for (int64_t i = 0; i < s.Q; ++i) {
      if (unread_b && unread_b[i]) continue;  // its output gradient is zero
      const T* p_row = P + (n * s.Q + i) * s.T;
      const T* keep_row = keep_rows.of(a, n, i);
      const T* dOi = dO.at(b, h, i);
      T weighted = 0;
      for (int64_t j = 0; j < s.T; ++j) {
        T dp = dot(dOi, dO.d, a.V.at(b, h, j), a.V.d, s.D);
        if (keep_row) dp *= keep_row[j];
        d_weights[j] = dp;
        weighted += p_row[j] * dp;
        T w = keep_row ? p_row[j] * keep_row[j] : p_row[j];
        if (w != 0) axpy(w, dOi, dO.d, dV.at(b, h, j), s.D);
      }
      const T* qi = a.Q.at(b, h, i);
      T* dQi = dQ.at(b, h, i);
      for (int64_t j = 0; j < s.T; ++j) {
        if (absent_b && absent_b[j]) continue;
        T d_score = a.scale * p_row[j] * (d_weights[j] - weighted);
        if (d_score == 0) continue;
        axpy(d_score, a.K.at(b, h, j), a.K.d, dQi, s.D);
        axpy(d_score, qi, a.Q.d, dK.at(b, h, j), s.D);
      }
    }
  }
}

// float32 with a head width known at compile time and dense rows (the layout of every
// fused projection). One pair's keys (forward) or values (backward) are first transposed
// into a [dh, T] block, so that a query's scores against all keys are dh multiply-adds of
// whole vectors over the keys, instead of one horizontal dot product per key of only dh
// terms (which left the vector unit mostly idle at dh = 16). Rows along dh are held in
// explicit 8-float vectors (GCC/Clang vector extensions): written as loops, the compiler
// unrolled them into scalar code, unable to prove the output rows do not alias the inputs.
// The helpers below are always inlined, so the ABI of passing vectors by value, which GCC
// warns about for the baseline clone, never applies.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float Lane8 __attribute__((vector_size(32)));
constexpr int kLane = 8;
constexpr int64_t kPaddedKeys = (kMaxKeys + kLane - 1) / kLane * kLane;

inline int64_t padded_keys(int64_t T) { return (T + kLane - 1) / kLane * kLane; }

J2V_ALWAYS_INLINE inline Lane8 load8(const float* p) {
  Lane8 v;
  std::memcpy(&v, p, sizeof v);  // rows need not be 32-byte aligned
  return v;
}
J2V_ALWAYS_INLINE inline void store8(float* p, Lane8 v) { std::memcpy(p, &v, sizeof v); }

// One row of dh floats in registers.
template <int D>
struct Row {
  static_assert(D % kLane == 0, "head width must be a multiple of 8");
  Lane8 v[D / kLane];
  J2V_ALWAYS_INLINE static Row zero() {
    Row r;
    for (auto& x : r.v) x = Lane8{};
    return r;
  }
  J2V_ALWAYS_INLINE static Row load(const float* p) {
    Row r;
    for (int c = 0; c < D / kLane; ++c) r.v[c] = load8(p + c * kLane);
    return r;
  }
  J2V_ALWAYS_INLINE void store(float* p) const {
    for (int c = 0; c < D / kLane; ++c) store8(p + c * kLane, v[c]);
  }
  J2V_ALWAYS_INLINE void add_to(float* p) const {
    for (int c = 0; c < D / kLane; ++c) store8(p + c * kLane, load8(p + c * kLane) + v[c]);
  }
  // this += w * x
  J2V_ALWAYS_INLINE void add_scaled(float w, const Row& x) {
    for (int c = 0; c < D / kLane; ++c) v[c] += w * x.v[c];
  }
};

// The keys a pair's queries attend to: the present ones, in order. When every key is absent
// all of them, scored alike (uniform attention, as masked_fill gives in the general path).
// Absent keys get weight exactly 0 either way (exp(-1e9 - top) underflows), so leaving them
// out changes no value; it saves their products and exponentials, a list branch's empty
// slots (45% of the slots in bench/train/nested.sh).
struct KeySet {
  int64_t index[kMaxKeys];
  int64_t count;
  bool none_present;
};

J2V_ALWAYS_INLINE inline void keys_of(const bool* absent_b, int64_t T, KeySet& keys) {
  keys.count = 0;
  for (int64_t j = 0; j < T; ++j)
    if (!absent_b || !absent_b[j]) keys.index[keys.count++] = j;
  keys.none_present = keys.count == 0;
  if (keys.none_present) {
    for (int64_t j = 0; j < T; ++j) keys.index[j] = j;
    keys.count = T;
  }
}

// block[d * Tp + k] = rows[index[k]][d], zero for count <= k < Tp.
template <int D>
J2V_ALWAYS_INLINE inline void transpose_rows(const Strided4<float>& rows, int64_t b, int64_t h, const KeySet& keys,
                                             int64_t Tp, float* block) {
  for (int64_t k = 0; k < keys.count; ++k) {
    const float* row = rows.at(b, h, keys.index[k]);
    for (int d = 0; d < D; ++d) block[d * Tp + k] = row[d];
  }
  for (int d = 0; d < D; ++d)
    for (int64_t k = keys.count; k < Tp; ++k) block[d * Tp + k] = 0;
}

// out[j] = factor * sum_d x[d] * block[d * Tp + j] for j < Tp. Four running sums over d: one
// would be a chain of dh dependent multiply-adds, which at a few keys (one vector of scores)
// is the query's critical path.
template <int D>
J2V_ALWAYS_INLINE inline void products_with_block(const float* x, float factor, const float* block, int64_t Tp,
                                                  float* out) {
  static_assert(D % 4 == 0, "head width must be a multiple of 4");
  float xs[D];
  for (int d = 0; d < D; ++d) xs[d] = x[d] * factor;
  for (int64_t j = 0; j < Tp; j += kLane) {
    Lane8 acc[4] = {};
    for (int d = 0; d < D; d += 4)
      for (int u = 0; u < 4; ++u) acc[u] += xs[d + u] * load8(block + (d + u) * Tp + j);
    store8(out + j, (acc[0] + acc[1]) + (acc[2] + acc[3]));
  }
}

// scores[k] = exp(scores[k] - max) for k < count, a block of whole vectors at a time (the
// padding up to Tp scores nothing); returns 1 / their sum. A call of std::exp per key was a
// fifth of the forward kernel's time.
J2V_ALWAYS_INLINE inline float softmax_numerators(float* scores, int64_t count, int64_t Tp) {
  if (count == 0) return 0;
  for (int64_t k = count; k < Tp; ++k) scores[k] = -1e30f;
  Lane8 top = load8(scores);
  for (int64_t j = kLane; j < Tp; j += kLane) top = simd::max(top, load8(scores + j));
  const Lane8 shift = simd::splat<Lane8>(simd::max_lane(top));
  Lane8 total{};
  for (int64_t j = 0; j < Tp; j += kLane) {
    Lane8 e = simd::exp_of_nonpositive(load8(scores + j) - shift);
    store8(scores + j, e);
    total += e;
  }
  // The padding's exp(-87) each (~2e-38) against a sum of at least 1.
  return 1.0f / simd::sum_lanes(total);
}

// Asks for the rows of the pair `ahead` pairs on (its queries, keys and values, and in
// backward its output gradients) while this pair computes. A short sequence's pair is a few
// hundred cycles of work on rows scattered through a fused projection far larger than the
// cache, which the hardware prefetcher does not follow: at four keys, waiting for those
// rows was most of the kernel's time.
constexpr int64_t kPrefetchPairs = 2;

J2V_ALWAYS_INLINE inline void prefetch_rows(const Strided4<float>& rows, int64_t b, int64_t h, int64_t count,
                                            int64_t row_bytes) {
  for (int64_t r = 0; r < count; ++r) {
    const char* row = reinterpret_cast<const char*>(rows.at(b, h, r));
    for (int64_t byte = 0; byte < row_bytes; byte += 64) __builtin_prefetch(row + byte);
  }
}

template <int D>
J2V_ALWAYS_INLINE inline void prefetch_pair(const PairArgs<float>& a, int64_t n, const Strided4<float>* d_out) {
  const Shape& s = a.s;
  if (n >= s.pairs()) return;
  int64_t b = n / s.H, h = n % s.H;
  constexpr int64_t kRowBytes = D * sizeof(float);
  prefetch_rows(a.Q, b, h, s.Q, kRowBytes);
  prefetch_rows(a.K, b, h, s.T, kRowBytes);
  prefetch_rows(a.V, b, h, s.T, kRowBytes);
  if (d_out) prefetch_rows(*d_out, b, h, s.Q, kRowBytes);
}

// Scores, weights and values below run over the key set's k < count; P and the gradients
// are indexed by the key itself, j = index[k].
template <int D>
J2V_ALWAYS_INLINE inline void forward_pairs_fixed(const PairArgs<float>& a, const Strided4<float>& O, float* P,
                                                  int64_t begin, int64_t end) {
  const Shape& s = a.s;
  KeySet keys;
  alignas(64) float keys_t[D * kPaddedKeys];
  alignas(64) float scores[kPaddedKeys];
  KeepRows<float> keep_rows;
  for (int64_t n = begin; n < end; ++n) {
    int64_t b = n / s.H, h = n % s.H;
    prefetch_pair<D>(a, n + kPrefetchPairs, nullptr);
    keys_of(a.absent ? a.absent + b * s.T : nullptr, s.T, keys);
    const int64_t Tp = padded_keys(keys.count);
    const bool* unread_b = a.unread ? a.unread + b * s.Q : nullptr;
    transpose_rows<D>(a.K, b, h, keys, Tp, keys_t);
    for (int64_t i = 0; i < s.Q; ++i) {
      float* p_row = P + (n * s.Q + i) * s.T;
      if (unread_b && unread_b[i]) {
        skip_query(p_row, s.T, O.at(b, h, i), 1, D);
        continue;
      }
      products_with_block<D>(a.Q.at(b, h, i), a.scale, keys_t, Tp, scores);
      if (keys.none_present)
        for (int64_t k = 0; k < keys.count; ++k) scores[k] = static_cast<float>(kAbsentScore);
      const float inverse = softmax_numerators(scores, keys.count, Tp);
      if (keys.count < s.T) std::memset(p_row, 0, s.T * sizeof(float));
      const float* keep_row = keep_rows.of(a, n, i);
      auto out = Row<D>::zero();
      for (int64_t k = 0; k < keys.count; ++k) {
        const int64_t j = keys.index[k];
        p_row[j] = scores[k] * inverse;
        float weight = keep_row ? p_row[j] * keep_row[j] : p_row[j];
        if (weight != 0) out.add_scaled(weight, Row<D>::load(a.V.at(b, h, j)));
      }
      out.store(O.at(b, h, i));
    }
  }
}

// Gradients of keys and values collect in local blocks and are written once per pair (each
// pair owns its rows of dK, dV and dQ, so every row is stored, not added to).
template <int D>
J2V_ALWAYS_INLINE inline void backward_pairs_fixed(const PairArgs<float>& a, const float* P, const Strided4<float>& dO,
                                                   const Strided4<float>& dQ, const Strided4<float>& dK,
                                                   const Strided4<float>& dV, int64_t begin, int64_t end) {
  const Shape& s = a.s;
  KeySet keys;
  alignas(64) float values_t[D * kPaddedKeys];
  alignas(64) float d_weights[kPaddedKeys];
  KeepRows<float> keep_rows;
  Row<D> d_keys[kMaxKeys], d_values[kMaxKeys];
  for (int64_t n = begin; n < end; ++n) {
    int64_t b = n / s.H, h = n % s.H;
    prefetch_pair<D>(a, n + kPrefetchPairs, &dO);
    keys_of(a.absent ? a.absent + b * s.T : nullptr, s.T, keys);
    const int64_t Tp = padded_keys(keys.count);
    transpose_rows<D>(a.V, b, h, keys, Tp, values_t);
    const bool* unread_b = a.unread ? a.unread + b * s.Q : nullptr;
    for (int64_t j = 0; j < s.T; ++j) d_keys[j] = d_values[j] = Row<D>::zero();
    for (int64_t i = 0; i < s.Q; ++i) {
      if (unread_b && unread_b[i]) {  // its output gradient is zero
        Row<D>::zero().store(dQ.at(b, h, i));
        continue;
      }
      const float* p_row = P + (n * s.Q + i) * s.T;
      const float* keep_row = keep_rows.of(a, n, i);
      const auto d_out = Row<D>::load(dO.at(b, h, i));
      const auto query = Row<D>::load(a.Q.at(b, h, i));
      products_with_block<D>(dO.at(b, h, i), 1.0f, values_t, Tp, d_weights);
      float weighted = 0;
      for (int64_t k = 0; k < keys.count; ++k) {
        const int64_t j = keys.index[k];
        if (keep_row) d_weights[k] *= keep_row[j];
        weighted += p_row[j] * d_weights[k];
        float w = keep_row ? p_row[j] * keep_row[j] : p_row[j];
        if (w != 0) d_values[j].add_scaled(w, d_out);
      }
      auto d_query = Row<D>::zero();
      if (!keys.none_present) {
        for (int64_t k = 0; k < keys.count; ++k) {
          const int64_t j = keys.index[k];
          float d_score = a.scale * p_row[j] * (d_weights[k] - weighted);
          if (d_score == 0) continue;
          d_query.add_scaled(d_score, Row<D>::load(a.K.at(b, h, j)));
          d_keys[j].add_scaled(d_score, query);
        }
      }
      d_query.store(dQ.at(b, h, i));
    }
    for (int64_t j = 0; j < s.T; ++j) {
      d_keys[j].store(dK.at(b, h, j));
      d_values[j].store(dV.at(b, h, j));
    }
  }
}

#define J2V_FIXED_WIDTH_KERNELS(D)                                                                             \
  J2V_VECTOR_CLONES void forward_pairs_d##D(const PairArgs<float>& a, const Strided4<float>& O, float* P,      \
                                            int64_t begin, int64_t end) {                                      \
    forward_pairs_fixed<D>(a, O, P, begin, end);                                                               \
  }                                                                                                            \
  J2V_VECTOR_CLONES void backward_pairs_d##D(const PairArgs<float>& a, const float* P, const Strided4<float>& dO, \
                                             const Strided4<float>& dQ, const Strided4<float>& dK,             \
                                             const Strided4<float>& dV, int64_t begin, int64_t end) {          \
    backward_pairs_fixed<D>(a, P, dO, dQ, dK, dV, begin, end);                                                 \
  }
J2V_FIXED_WIDTH_KERNELS(8)
J2V_FIXED_WIDTH_KERNELS(16)
J2V_FIXED_WIDTH_KERNELS(32)
J2V_FIXED_WIDTH_KERNELS(64)
#undef J2V_FIXED_WIDTH_KERNELS

// The fixed-width kernels read and write rows densely along dh.
bool rows_dense(std::initializer_list<const Strided4<float>*> operands) {
  for (const auto* t : operands)
    if (t->d != 1) return false;
  return true;
}

// Other widths and layouts: the generic loops, with clones for AVX2 and AVX-512, chosen at
// load time (the baseline x86-64 build has SSE2 only).
J2V_VECTOR_CLONES void forward_pairs_generic_float(const PairArgs<float>& a, const Strided4<float>& O, float* P,
                                                   int64_t begin, int64_t end) {
  forward_pairs<float>(a, O, P, begin, end);
}
J2V_VECTOR_CLONES void backward_pairs_generic_float(const PairArgs<float>& a, const float* P,
                                                    const Strided4<float>& dO, const Strided4<float>& dQ,
                                                    const Strided4<float>& dK, const Strided4<float>& dV,
                                                    int64_t begin, int64_t end) {
  backward_pairs<float>(a, P, dO, dQ, dK, dV, begin, end);
}

void forward_pairs_float(const PairArgs<float>& a, const Strided4<float>& O, float* P, int64_t begin, int64_t end) {
  if (rows_dense({&a.Q, &a.K, &a.V, &O})) {
    switch (a.s.D) {
      case 8: return forward_pairs_d8(a, O, P, begin, end);
      case 16: return forward_pairs_d16(a, O, P, begin, end);
      case 32: return forward_pairs_d32(a, O, P, begin, end);
      case 64: return forward_pairs_d64(a, O, P, begin, end);
      default: break;
    }
  }
  forward_pairs_generic_float(a, O, P, begin, end);
}
void backward_pairs_float(const PairArgs<float>& a, const float* P, const Strided4<float>& dO,
                          const Strided4<float>& dQ, const Strided4<float>& dK, const Strided4<float>& dV,
                          int64_t begin, int64_t end) {
  if (rows_dense({&a.Q, &a.K, &a.V, &dO, &dQ, &dK, &dV})) {
    switch (a.s.D) {
      case 8: return backward_pairs_d8(a, P, dO, dQ, dK, dV, begin, end);
      case 16: return backward_pairs_d16(a, P, dO, dQ, dK, dV, begin, end);
      case 32: return backward_pairs_d32(a, P, dO, dQ, dK, dV, begin, end);
      case 64: return backward_pairs_d64(a, P, dO, dQ, dK, dV, begin, end);
      default: break;
    }
  }
  backward_pairs_generic_float(a, P, dO, dQ, dK, dV, begin, end);
}
void forward_pairs_any(const PairArgs<float>& a, const Strided4<float>& O, float* P, int64_t begin, int64_t end) {
  forward_pairs_float(a, O, P, begin, end);
}
void forward_pairs_any(const PairArgs<double>& a, const Strided4<double>& O, double* P, int64_t begin, int64_t end) {
  forward_pairs<double>(a, O, P, begin, end);
}
void backward_pairs_any(const PairArgs<float>& a, const float* P, const Strided4<float>& dO,
                        const Strided4<float>& dQ, const Strided4<float>& dK, const Strided4<float>& dV,
                        int64_t begin, int64_t end) {
  backward_pairs_float(a, P, dO, dQ, dK, dV, begin, end);
}
void backward_pairs_any(const PairArgs<double>& a, const double* P, const Strided4<double>& dO,
                        const Strided4<double>& dQ, const Strided4<double>& dK, const Strided4<double>& dV,
                        int64_t begin, int64_t end) {
  backward_pairs<double>(a, P, dO, dQ, dK, dV, begin, end);
}

template <typename T>
PairArgs<T> pair_args(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                      const torch::Tensor& padding, const torch::Tensor& unread, const CounterDropout& dropout,
                      double scale) {
  return {Shape(q, k),
          Strided4<T>(q),
          Strided4<T>(k),
          Strided4<T>(v),
          padding.numel() ? padding.data_ptr<bool>() : nullptr,
          unread.numel() ? unread.data_ptr<bool>() : nullptr,
          dropout,
          static_cast<T>(scale)};
}

template <typename T>
void forward_kernel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                    const torch::Tensor& padding, const torch::Tensor& unread, const CounterDropout& dropout, double scale,
                    torch::Tensor& out, torch::Tensor& probs) {
  auto a = pair_args<T>(q, k, v, padding, unread, dropout, scale);
  Strided4<T> O(out);
  T* P = probs.data_ptr<T>();
  at::parallel_for(0, a.s.pairs(), a.s.grain(),
                   [&](int64_t begin, int64_t end) { forward_pairs_any(a, O, P, begin, end); });
}

template <typename T>
void backward_kernel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& padding, const torch::Tensor& unread, const CounterDropout& dropout, double scale,
                     const torch::Tensor& probs, const torch::Tensor& grad_out, torch::Tensor& grad_q,
                     torch::Tensor& grad_k, torch::Tensor& grad_v) {
  auto a = pair_args<T>(q, k, v, padding, unread, dropout, scale);
  Strided4<T> dO(grad_out), dQ(grad_q), dK(grad_k), dV(grad_v);
  const T* P = probs.data_ptr<T>();
  at::parallel_for(0, a.s.pairs(), a.s.grain(),
                   [&](int64_t begin, int64_t end) { backward_pairs_any(a, P, dO, dQ, dK, dV, begin, end); });
}

struct Operands {
  torch::Tensor q, k, v, padding;
  CounterDropout dropout;
  double scale;
  torch::Tensor unread;  // [B, Q] bool, or empty
};

// Runs the forward kernel; returns the output and the attention weights.
std::pair<torch::Tensor, torch::Tensor> run_forward(const Operands& in) {
  Shape s(in.q, in.k);
  auto out = heads_last_layout(s.B, s.H, s.Q, s.D, in.q.options());
  auto probs = torch::empty({s.pairs(), s.Q, s.T}, in.q.options());
  AT_DISPATCH_FLOATING_TYPES(in.q.scalar_type(), "short_attention_forward", [&] {
    forward_kernel<scalar_t>(in.q, in.k, in.v, in.padding, in.unread, in.dropout, in.scale, out, probs);
  });
  return {out, probs};
}

void run_backward(const Operands& in, const torch::Tensor& probs, const torch::Tensor& grad_out, torch::Tensor& grad_q,
                  torch::Tensor& grad_k, torch::Tensor& grad_v) {
  AT_DISPATCH_FLOATING_TYPES(in.q.scalar_type(), "short_attention_backward", [&] {
    backward_kernel<scalar_t>(in.q, in.k, in.v, in.padding, in.unread, in.dropout, in.scale, probs, grad_out, grad_q,
                              grad_k, grad_v);
  });
}

// A [B, T, S, h, dh] fused projection's slot as a [B, h, T, dh] operand (a view).
torch::Tensor slot(const torch::Tensor& packed, int64_t index) { return packed.select(2, index).permute({0, 2, 1, 3}); }

// What both autograd functions keep for backward besides their tensor inputs.
void save_extras(torch::autograd::AutogradContext* ctx, const Operands& in, const torch::Tensor& probs) {
  ctx->saved_data["padding"] = in.padding;
  ctx->saved_data["dropout_seed"] = static_cast<int64_t>(in.dropout.seed);
  ctx->saved_data["dropout_drop_below"] = static_cast<int64_t>(in.dropout.drop_below);
  ctx->saved_data["dropout_scale"] = in.dropout.scale;
  ctx->saved_data["probs"] = probs;
  ctx->saved_data["scale"] = in.scale;
  ctx->saved_data["unread"] = in.unread;
}

// The operands rebuilt in backward from q, k, v and the saved extras.
Operands restore_operands(torch::autograd::AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v) {
  return {std::move(q),
          std::move(k),
          std::move(v),
          ctx->saved_data["padding"].toTensor(),
          CounterDropout{static_cast<uint64_t>(ctx->saved_data["dropout_seed"].toInt()),
                         static_cast<uint32_t>(ctx->saved_data["dropout_drop_below"].toInt()),
                         ctx->saved_data["dropout_scale"].toDouble()},
          ctx->saved_data["scale"].toDouble(),
          ctx->saved_data["unread"].toTensor()};
}

// Attention whose keys and values (and, for self-attention, queries) are slots of one fused
// projection [B, T, S, h, dh]: the gradient comes back as one tensor in the projection's own
// layout, not as per-slot gradients that autograd would scatter into zeros and add up.
// Queries: slot 0 of `packed` when `separate_q` is empty (S = 3), else `separate_q` (S = 2).
class PackedAttentionFunction : public torch::autograd::Function<PackedAttentionFunction> {
 public:
  static Operands operands(const torch::Tensor& separate_q, const torch::Tensor& packed, const torch::Tensor& padding,
                           const CounterDropout& dropout, double scale, const torch::Tensor& unread) {
    bool self = separate_q.numel() == 0;
    return {self ? slot(packed, 0) : separate_q,
            slot(packed, self ? 1 : 0),
            slot(packed, self ? 2 : 1),
            padding,
            dropout,
            scale,
            unread};
  }

  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& separate_q,
                               const torch::Tensor& packed, const torch::Tensor& padding,
                               const CounterDropout& dropout, double scale, const torch::Tensor& unread) {
    auto in = operands(separate_q, packed, padding, dropout, scale, unread);
    auto [out, probs] = run_forward(in);
    ctx->save_for_backward({separate_q, packed});
    save_extras(ctx, in, probs);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &separate_q = saved[0], &packed = saved[1];
    bool self = separate_q.numel() == 0;
    auto views = operands(separate_q, packed, {}, {}, 0, {});
    auto in = restore_operands(ctx, views.q, views.k, views.v);
    auto grad_packed = torch::empty(packed.sizes(), packed.options());  // every element written
    Shape s(in.q, in.k);
    auto grad_q = self ? slot(grad_packed, 0) : heads_last_layout(s.B, s.H, s.Q, s.D, in.q.options());
    auto grad_k = slot(grad_packed, self ? 1 : 0), grad_v = slot(grad_packed, self ? 2 : 1);
    run_backward(in, ctx->saved_data["probs"].toTensor(), grads[0], grad_q, grad_k, grad_v);
    return {self ? torch::Tensor() : grad_q, grad_packed, torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

// The same with three separate operands (rotary positions, grouped key/value heads).
class ShortAttentionFunction : public torch::autograd::Function<ShortAttentionFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& padding,
                               const CounterDropout& dropout, double scale, const torch::Tensor& unread) {
    Operands in{q, k, v, padding, dropout, scale, unread};
    auto [out, probs] = run_forward(in);
    ctx->save_for_backward({q, k, v});
    save_extras(ctx, in, probs);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto in = restore_operands(ctx, saved[0], saved[1], saved[2]);
    Shape s(in.q, in.k);
    auto grad_q = heads_last_layout(s.B, s.H, s.Q, s.D, in.q.options());
    auto grad_k = heads_last_layout(s.B, s.H, s.T, s.D, in.q.options());
    auto grad_v = heads_last_layout(s.B, s.H, s.T, s.D, in.q.options());
    run_backward(in, ctx->saved_data["probs"].toTensor(), grads[0], grad_q, grad_k, grad_v);
    return {grad_q, grad_k, grad_v, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Padding as a dense [B, T] bool tensor (an empty one for none: autograd functions take
// tensors), and the dropout of the attention weights (inactive unless training with p > 0).
std::pair<torch::Tensor, CounterDropout> padding_and_dropout(const torch::Tensor& padding, int64_t B, int64_t T,
                                                             double dropout, bool training) {
  auto absent = padding.defined() ? padding.to(torch::kBool).expand({B, T}).contiguous()
                                  : torch::empty({0}, torch::kBool);
  return {absent, training && dropout > 0 ? CounterDropout::draw(dropout) : CounterDropout{}};
}

double scale_of(const torch::Tensor& q) { return 1.0 / std::sqrt(static_cast<double>(q.size(-1))); }

bool records_graph(std::initializer_list<torch::Tensor> inputs) {
  if (!torch::GradMode::is_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

// Unread queries as a dense [B, Q] bool tensor, or an empty one for none.
torch::Tensor unread_rows(const torch::Tensor& unread, int64_t B, int64_t Q) {
  return unread.defined() ? unread.to(torch::kBool).expand({B, Q}).contiguous() : torch::empty({0}, torch::kBool);
}

}  // namespace

bool short_attention_applies(const torch::Tensor& q, const torch::Tensor& k) {
  auto type = q.scalar_type();
  return q.device().is_cpu() && q.dim() == 4 && k.dim() == 4 && k.size(2) <= kMaxKeys &&
         (type == torch::kFloat32 || type == torch::kFloat64) && k.scalar_type() == type;
}

torch::Tensor short_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& padding, double dropout, bool training,
                              const torch::Tensor& unread_queries) {
  TORCH_CHECK(short_attention_applies(q, k) && v.scalar_type() == q.scalar_type(),
              "short_attention: CPU float operands with at most ", kMaxKeys, " keys");
  auto [absent, drop] = padding_and_dropout(padding, q.size(0), k.size(2), dropout, training);
  auto unread = unread_rows(unread_queries, q.size(0), q.size(2));
  if (!records_graph({q, k, v})) return run_forward({q, k, v, absent, drop, scale_of(q), unread}).first;
  return ShortAttentionFunction::apply(q, k, v, absent, drop, scale_of(q), unread);
}

torch::Tensor short_self_attention(const torch::Tensor& qkv, const torch::Tensor& padding, double dropout,
                                   bool training, const torch::Tensor& unread_queries) {
  TORCH_CHECK(qkv.dim() == 5 && qkv.size(2) == 3, "short_self_attention: qkv must be [B, T, 3, h, dh]");
  auto q = slot(qkv, 0), k = slot(qkv, 1);
  TORCH_CHECK(short_attention_applies(q, k), "short_self_attention: CPU float operands with at most ", kMaxKeys, " keys");
  auto [absent, drop] = padding_and_dropout(padding, q.size(0), k.size(2), dropout, training);
  auto none = torch::empty({0}, qkv.options());
  auto unread = unread_rows(unread_queries, q.size(0), q.size(2));
  if (!records_graph({qkv}))
    return run_forward(PackedAttentionFunction::operands(none, qkv, absent, drop, scale_of(q), unread)).first;
  return PackedAttentionFunction::apply(none, qkv, absent, drop, scale_of(q), unread);
}

torch::Tensor short_cross_attention(const torch::Tensor& q, const torch::Tensor& kv, const torch::Tensor& padding,
                                    double dropout, bool training) {
  TORCH_CHECK(kv.dim() == 5 && kv.size(2) == 2 && q.dim() == 4 && q.numel() > 0,
              "short_cross_attention: q must be [B, h, Q, dh] and kv [B, T, 2, h, dh]");
  auto k = slot(kv, 0);
  TORCH_CHECK(short_attention_applies(q, k), "short_cross_attention: CPU float operands with at most ", kMaxKeys, " keys");
  auto [absent, drop] = padding_and_dropout(padding, q.size(0), k.size(2), dropout, training);
  auto none = torch::empty({0}, torch::kBool);
  if (!records_graph({q, kv}))
    return run_forward(PackedAttentionFunction::operands(q, kv, absent, drop, scale_of(q), none)).first;
  return PackedAttentionFunction::apply(q, kv, absent, drop, scale_of(q), none);
}

}  // namespace j2v::nn
