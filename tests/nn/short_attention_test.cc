// The fused short-sequence attention kernel computes what the textbook formula computes,
// values and gradients, for every layout its callers hand it.
#include <gtest/gtest.h>

#include "nn/attention.h"
#include "nn/short_attention.h"

namespace j2v::nn {
namespace {

// softmax(q k^T / sqrt(dh), absent keys excluded) v, in plain LibTorch ops.
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& padding) {
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  if (padding.defined()) scores = scores.masked_fill(padding.unsqueeze(1).unsqueeze(2), -1e9);
  return torch::matmul(torch::softmax(scores, -1), v);
}

struct Operands {
  torch::Tensor q, k, v, padding;
};

// q, k and v as the callers make them: slices of one fused projection, permuted to
// [B, h, L, dh] (not contiguous), with some keys absent, one row with a single key and, when
// B > 2, one with none (attention then spreads evenly, as masked_fill makes it).
Operands fused_projection_operands(int64_t B, int64_t H, int64_t T, int64_t D, torch::ScalarType type) {
  torch::manual_seed(3);
  auto qkv = torch::randn({B, T, 3, H, D}, torch::dtype(type)).permute({2, 0, 3, 1, 4});
  auto padding = torch::rand({B, T}) < 0.3;
  padding.select(0, 0).fill_(true);
  padding.select(0, 0).select(0, T - 1).fill_(false);
  if (B > 2) padding.select(0, 2).fill_(true);
  return {qkv[0], qkv[1], qkv[2], padding};
}

TEST(ShortAttention, MatchesTheFormulaInValueAndGradient) {
  auto ops = fused_projection_operands(5, 3, 7, 8, torch::kFloat64);
  auto inputs = std::vector<torch::Tensor>{ops.q.detach().requires_grad_(), ops.k.detach().requires_grad_(),
                                           ops.v.detach().requires_grad_()};
  auto expected_inputs = std::vector<torch::Tensor>{ops.q.detach().requires_grad_(),
                                                    ops.k.detach().requires_grad_(), ops.v.detach().requires_grad_()};
  ASSERT_TRUE(short_attention_applies(inputs[0], inputs[1]));
  auto got = short_attention(inputs[0], inputs[1], inputs[2], ops.padding, 0.0, true);
  auto expected = reference_attention(expected_inputs[0], expected_inputs[1], expected_inputs[2], ops.padding);
  ASSERT_TRUE(torch::allclose(got, expected, 1e-10, 1e-12));
  auto upstream = torch::randn_like(expected);
  (got * upstream).sum().backward();
  (expected * upstream).sum().backward();
  for (size_t i = 0; i < 3; ++i)
    EXPECT_TRUE(torch::allclose(inputs[i].grad(), expected_inputs[i].grad(), 1e-9, 1e-11)) << "operand " << i;
}

TEST(ShortAttention, LearnedQueriesBroadcastOverTheBatch) {
  // The pooling and the decoder pass one set of queries expanded over the batch (stride 0).
  auto ops = fused_projection_operands(4, 2, 6, 4, torch::kFloat64);
  auto queries = torch::randn({1, 2, 3, 4}, torch::kFloat64).requires_grad_();
  auto reference_queries = queries.detach().clone().requires_grad_();
  auto got = short_attention(queries.expand({4, 2, 3, 4}), ops.k, ops.v, ops.padding, 0.0, false);
  auto expected = reference_attention(reference_queries.expand({4, 2, 3, 4}), ops.k, ops.v, ops.padding);
  ASSERT_TRUE(torch::allclose(got, expected, 1e-10, 1e-12));
  got.pow(2).sum().backward();
  expected.pow(2).sum().backward();
  EXPECT_TRUE(torch::allclose(queries.grad(), reference_queries.grad(), 1e-9, 1e-11));
}

TEST(ShortAttention, PassesGradcheckWithoutPaddingAndInFloat32) {
  auto ops = fused_projection_operands(2, 2, 5, 3, torch::kFloat64);
  auto q = ops.q.detach().requires_grad_(), k = ops.k.detach().requires_grad_(), v = ops.v.detach().requires_grad_();
  // Central differences of the double-precision kernel against its analytic backward.
  auto value = short_attention(q, k, v, {}, 0.0, false);
  (value * value).sum().backward();
  double eps = 1e-6;
  for (auto* operand : {&q, &k, &v}) {
    auto flat = operand->detach().contiguous().clone();
    auto grad = operand->grad().contiguous().view(-1);
    for (int64_t e = 0; e < flat.numel(); e += 7) {
      auto plus = flat.clone(), minus = flat.clone();
      plus.view(-1)[e] += eps;
      minus.view(-1)[e] -= eps;
      auto run = [&](const torch::Tensor& changed) {
        torch::NoGradGuard no_grad;
        auto qq = operand == &q ? changed : q.detach(), kk = operand == &k ? changed : k.detach(),
             vv = operand == &v ? changed : v.detach();
        auto out = short_attention(qq, kk, vv, {}, 0.0, false);
        return (out * out).sum().item<double>();
      };
      double numeric = (run(plus) - run(minus)) / (2 * eps);
      EXPECT_NEAR(grad[e].item<double>(), numeric, 1e-6);
    }
  }
  // The float32 path agrees with the formula to float precision.
  auto q32 = ops.q.to(torch::kFloat32), k32 = ops.k.to(torch::kFloat32), v32 = ops.v.to(torch::kFloat32);
  EXPECT_TRUE(torch::allclose(short_attention(q32, k32, v32, ops.padding, 0.0, false),
                              reference_attention(q32, k32, v32, ops.padding), 1e-5, 1e-6));
}

TEST(ShortAttention, DropoutKeepsTheExpectationAndItsOwnGradient) {
  auto ops = fused_projection_operands(64, 2, 6, 4, torch::kFloat64);
  auto v = ops.v.detach().requires_grad_();
  torch::manual_seed(11);
  auto dropped = short_attention(ops.q, ops.k, v, ops.padding, 0.5, true);
  // Some weights dropped, the survivors scaled by 2: the output differs from the clean one,
  // but averages to it over many draws.
  auto clean = short_attention(ops.q, ops.k, ops.v, ops.padding, 0.5, false);
  EXPECT_FALSE(torch::allclose(dropped, clean));
  torch::Tensor mean = torch::zeros_like(clean);
  for (int r = 0; r < 400; ++r) mean += short_attention(ops.q, ops.k, ops.v, ops.padding, 0.5, true) / 400.0;
  EXPECT_LT((mean - clean).abs().mean().item<double>(), 0.05 * clean.abs().mean().item<double>());
  // The output is linear in v: its gradient against v reproduces it exactly.
  dropped.sum().backward();
  auto replay = (v.grad() * v.detach()).sum();
  EXPECT_NEAR(replay.item<double>(), dropped.sum().item<double>(), 1e-9);
}

TEST(ShortAttention, DropoutDecisionsRepeatWithTheSeedWhateverTheThreadCount) {
  // Each weight's keep decision is a function of the seed and the weight's position, so a
  // seeded run repeats on any number of threads, and its backward pass drops what forward
  // dropped (checked above); another seed drops others. Pairs of short sequences (items of
  // four fields) and a long one's rows, which draw their decisions in different ways.
  int threads_before = torch::get_num_threads();
  for (int64_t T : {4, 60}) {
    auto qkv = torch::randn({300, T, 3, 4, 16});
    auto run = [&](int threads, uint64_t seed) {
      torch::set_num_threads(threads);
      torch::manual_seed(seed);
      return short_self_attention(qkv, {}, 0.25, true);
    };
    auto one_thread = run(1, 7);
    EXPECT_TRUE(torch::equal(one_thread, run(2, 7))) << "T " << T;
    EXPECT_FALSE(torch::allclose(one_thread, run(1, 8))) << "T " << T;
    // About a quarter of the weights dropped: the output's mean magnitude stays near the
    // clean one's (survivors are scaled by 4/3), not a quarter below it.
    auto clean = short_self_attention(qkv, {}, 0.25, false);
    double ratio = one_thread.abs().mean().item<double>() / clean.abs().mean().item<double>();
    EXPECT_GT(ratio, 0.9) << "T " << T;
  }
  torch::set_num_threads(threads_before);
}

TEST(ShortAttention, FusedProjectionsGiveTheSameValuesAndGradients) {
  torch::manual_seed(5);
  int64_t B = 4, T = 6, H = 2, D = 4;
  auto padding = torch::rand({B, T}) < 0.3;
  padding.select(1, 0).fill_(false);
  // Self-attention over one [B, T, 3, h, dh] projection.
  auto qkv = torch::randn({B, T, 3, H, D}, torch::kFloat64).requires_grad_();
  auto reference = qkv.detach().clone().requires_grad_();
  auto slot = [](const torch::Tensor& t, int64_t i) { return t.select(2, i).transpose(1, 2); };
  auto got = short_self_attention(qkv, padding, 0.0, true);
  auto expected = reference_attention(slot(reference, 0), slot(reference, 1), slot(reference, 2), padding);
  ASSERT_TRUE(torch::allclose(got, expected, 1e-10, 1e-12));
  auto upstream = torch::randn_like(expected);
  (got * upstream).sum().backward();
  (expected * upstream).sum().backward();
  EXPECT_TRUE(torch::allclose(qkv.grad(), reference.grad(), 1e-9, 1e-11));
  // Learned queries over one [B, T, 2, h, dh] key/value projection.
  auto queries = torch::randn({1, H, 2, D}, torch::kFloat64).requires_grad_();
  auto kv = torch::randn({B, T, 2, H, D}, torch::kFloat64).requires_grad_();
  auto ref_queries = queries.detach().clone().requires_grad_(), ref_kv = kv.detach().clone().requires_grad_();
  auto pooled = short_cross_attention(queries.expand({B, H, 2, D}), kv, padding, 0.0, true);
  auto ref_pooled = reference_attention(ref_queries.expand({B, H, 2, D}), slot(ref_kv, 0), slot(ref_kv, 1), padding);
  ASSERT_TRUE(torch::allclose(pooled, ref_pooled, 1e-10, 1e-12));
  (pooled * pooled).sum().backward();
  (ref_pooled * ref_pooled).sum().backward();
  EXPECT_TRUE(torch::allclose(queries.grad(), ref_queries.grad(), 1e-9, 1e-11));
  EXPECT_TRUE(torch::allclose(kv.grad(), ref_kv.grad(), 1e-9, 1e-11));
  // Merging the heads of the result is a view, not a copy.
  EXPECT_TRUE(got.transpose(1, 2).is_contiguous());
}

TEST(ShortAttention, Float32HeadWidthsOfTheFastKernelsMatchTheFormula) {
  // Head widths 8, 16, 32 and 64 with dense rows take the fixed-width float32 kernels; 12 the
  // generic loops. Key counts straddle the kernels' 8-key blocks. Reference in float64.
  for (int64_t D : {8, 16, 32, 64, 12}) {
    for (int64_t T : {1, 7, 37}) {
      auto ops = fused_projection_operands(3, 2, T, D, torch::kFloat32);
      std::vector<torch::Tensor> mine, theirs;
      for (const auto* t : {&ops.q, &ops.k, &ops.v}) {
        mine.push_back(t->detach().requires_grad_());
        theirs.push_back(t->detach().to(torch::kFloat64).requires_grad_());
      }
      auto got = short_attention(mine[0], mine[1], mine[2], ops.padding, 0.0, true);
      auto expected = reference_attention(theirs[0], theirs[1], theirs[2], ops.padding);
      ASSERT_TRUE(torch::allclose(got.to(torch::kFloat64), expected, 1e-4, 1e-5)) << "D " << D << " T " << T;
      auto upstream = torch::randn_like(expected);
      (got * upstream.to(torch::kFloat32)).sum().backward();
      (expected * upstream).sum().backward();
      for (size_t i = 0; i < 3; ++i)
        EXPECT_TRUE(torch::allclose(mine[i].grad().to(torch::kFloat64), theirs[i].grad(), 1e-3, 1e-4))
            << "operand " << i << " D " << D << " T " << T;
    }
  }
  // Fused self-attention at the model's default width (d_model 64 over 4 heads), with
  // dropout: the output is linear in v, so its gradient against the projection replays it.
  torch::manual_seed(9);
  auto qkv = torch::randn({5, 37, 3, 4, 16}).requires_grad_();
  auto dropped = short_self_attention(qkv, {}, 0.3, true);
  dropped.sum().backward();
  auto v_part = qkv.detach().select(2, 2), v_grad = qkv.grad().select(2, 2);
  EXPECT_NEAR((v_grad * v_part).sum().item<double>(), dropped.sum().item<double>(),
              1e-3 * dropped.abs().sum().item<double>());
}

TEST(ShortAttention, UnreadQueriesCostNothingAndChangeNoReadValueOrGradient) {
  // Packed list blocks discard the attention outputs of slots without an item: those rows are
  // left zero, and what is read (outputs and every gradient) is what full attention gives.
  for (auto type : {torch::kFloat32, torch::kFloat64}) {
    for (int64_t D : {16, 12}) {  // the fixed-width kernel and the generic loops
      auto ops = fused_projection_operands(3, 2, 9, D, type);
      auto unread = ops.padding.clone();  // absent slots: nobody reads their outputs
      unread.select(0, 1).select(0, 0).fill_(true);  // nor one present slot's
      auto read = unread.logical_not().unsqueeze(1).unsqueeze(3).to(type);  // [B, 1, Q, 1]
      std::vector<torch::Tensor> full, skipping;
      for (const auto* t : {&ops.q, &ops.k, &ops.v}) {
        full.push_back(t->detach().requires_grad_());
        skipping.push_back(t->detach().requires_grad_());
      }
      auto all_rows = short_attention(full[0], full[1], full[2], ops.padding, 0.0, true);
      auto read_rows = short_attention(skipping[0], skipping[1], skipping[2], ops.padding, 0.0, true, unread);
      double tolerance = type == torch::kFloat32 ? 1e-6 : 1e-12;
      ASSERT_TRUE(torch::allclose(read_rows, all_rows * read, tolerance, tolerance)) << "D " << D;
      EXPECT_EQ((read_rows * (1 - read)).abs().max().item<double>(), 0.0) << "unread rows are zero";
      auto upstream = torch::randn_like(all_rows) * read;
      (all_rows * upstream).sum().backward();
      (read_rows * upstream).sum().backward();
      for (size_t i = 0; i < 3; ++i)
        EXPECT_TRUE(torch::allclose(skipping[i].grad(), full[i].grad(), tolerance, tolerance))
            << "operand " << i << " D " << D;
    }
  }
  // The same through one fused self-attention projection.
  torch::manual_seed(4);
  auto qkv = torch::randn({4, 11, 3, 4, 16}).requires_grad_();
  auto mine = qkv.detach().clone().requires_grad_();
  auto padding = torch::rand({4, 11}) < 0.4;
  padding.select(1, 0).fill_(false);
  auto read = padding.logical_not().unsqueeze(1).unsqueeze(3).to(torch::kFloat32);
  auto all_rows = short_self_attention(qkv, padding, 0.0, true);
  auto read_rows = short_self_attention(mine, padding, 0.0, true, padding);
  ASSERT_TRUE(torch::allclose(read_rows, all_rows * read, 1e-6, 1e-6));
  auto upstream = torch::randn_like(all_rows) * read;
  (all_rows * upstream).sum().backward();
  (read_rows * upstream).sum().backward();
  EXPECT_TRUE(torch::allclose(mine.grad(), qkv.grad(), 1e-6, 1e-6));
}

TEST(ShortAttention, AttendRoutesLongSequencesToTheGemmPath) {
  auto ops = fused_projection_operands(2, 2, 200, 4, torch::kFloat32);
  EXPECT_FALSE(short_attention_applies(ops.q, ops.k));
  auto got = attend(ops.q, ops.k, ops.v, ops.padding, 0.0, false);
  EXPECT_TRUE(torch::allclose(got, reference_attention(ops.q, ops.k, ops.v, ops.padding), 1e-5, 1e-6));
}

}  // namespace
}  // namespace j2v::nn
