#include "engine/strategies/ddp_strategy.h"

#include <fmt/format.h>

#include <cstdlib>
#include <map>
#include <stdexcept>

#include "engine/module.h"

namespace j2v::engine {

namespace {

// Gradients travel in buckets of at most this many bytes: one huge buffer would double the
// model's gradient memory; a collective per parameter would pay its latency hundreds of times.
constexpr int64_t kBucketBytes = 25 << 20;

// The names and shapes of a module's parameters and buffers: what must match across ranks.
std::string architecture_of(Module& module) {
  std::string out;
  for (const auto& p : module.named_parameters()) out += fmt::format("{} {}\n", p.key(), c10::str(p.value().sizes()));
  for (const auto& b : module.named_buffers()) out += fmt::format("{} {}\n", b.key(), c10::str(b.value().sizes()));
  return out;
}

std::string first_difference(const std::string& a, const std::string& b) {
  size_t start = 0;
  while (start < a.size() && start < b.size()) {
    size_t end_a = a.find('\n', start), end_b = b.find('\n', start);
    std::string line_a = a.substr(start, end_a - start), line_b = b.substr(start, end_b - start);
    if (line_a != line_b) return fmt::format("'{}' against rank 0's '{}'", line_b, line_a);
    start = end_a + 1;
  }
  return a.size() < b.size() ? "extra parameters" : "missing parameters";
}

}  // namespace

DdpStrategy::DdpStrategy(int64_t devices, int64_t num_nodes, int64_t timeout_s)
    : timeout_(timeout_s) {
  if (timeout_s < 1) throw std::invalid_argument("trainer.ddp_timeout_s must be >= 1");
  layout_ = rank_layout(devices, num_nodes);  // throws naming a missing or inconsistent variable
}

DdpStrategy::~DdpStrategy() {
  group_.reset();
  launcher_.reset();  // waits for the ranks this process started
}

void DdpStrategy::setup_environment(Trainer&) {
  if (environment_ready_) return;
  environment_ready_ = true;
  if (layout_.world_size == 1) return;
  if (!layout_.from_environment && layout_.local_world_size > 1) launcher_ = std::make_unique<RankLauncher>(layout_);
  ProcessGroupOptions options;
  options.rank = layout_.rank;
  options.world_size = layout_.world_size;
  options.master_addr = layout_.master_addr;
  options.master_port = layout_.master_port;
  options.timeout = timeout_;
  options.single_machine = layout_.world_size == layout_.local_world_size;
  if (const char* bind = std::getenv("J2V_BIND_ADDR"); bind && *bind) options.bind_addr = bind;
  group_ = std::make_unique<ProcessGroup>(options);
}

int DdpStrategy::intra_op_threads(int cores) const {
  return std::max(1, cores / static_cast<int>(std::max<int64_t>(layout_.local_world_size, 1)));
}

void DdpStrategy::setup(Module& module, Trainer&) {
  if (!group_) return;
  auto mine = architecture_of(module);
  auto all = group_->all_gather(mine, "comparing the ranks' models");
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      throw std::runtime_error(fmt::format(
          "rank {} built a different model than rank 0 ({}): every rank must learn its fields' state (vocabularies, "
          "statistics) from the same training data",
          r, first_difference(all[0], all[r])));
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> state;
  for (auto& p : module.parameters()) state.push_back(p);
  for (auto& b : module.buffers()) state.push_back(b);
  // Rank 0's initial weights everywhere; contiguous copies travel, then land in place.
  for (auto& t : state) {
    std::vector<torch::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    group_->broadcast(one, 0, "broadcasting rank 0's initial weights");
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

std::vector<torch::Tensor> DdpStrategy::training_step(Module& module, const std::vector<Batch*>& batches,
                                                      int64_t first_batch_idx, const TrainingStepFunction& step) {
  std::vector<torch::Tensor> losses;
  for (size_t i = 0; i < batches.size(); ++i)
    losses.push_back(step(module, *batches[i], first_batch_idx + static_cast<int64_t>(i)));
  return losses;
}

void DdpStrategy::reduce_gradients(Module& module) {
  if (!group_) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> params;
  for (auto& p : module.parameters())
    if (p.requires_grad()) params.push_back(p);
  double world = static_cast<double>(layout_.world_size);
  // Buckets of parameters of one dtype, in the module's order (the same on every rank). Each
  // bucket carries one extra element per parameter: 1 where this rank has a gradient.
  size_t begin = 0;
  while (begin < params.size()) {
    auto dtype = params[begin].scalar_type();
    size_t end = begin;
    int64_t bytes = 0;
    while (end < params.size() && params[end].scalar_type() == dtype &&
           (end == begin || bytes + params[end].numel() * params[end].element_size() <= kBucketBytes)) {
      bytes += params[end].numel() * params[end].element_size();
      ++end;
    }
    std::vector<torch::Tensor> pieces;
    std::vector<double> used;
    for (size_t i = begin; i < end; ++i) {
      const auto& g = params[i].grad();
      pieces.push_back(g.defined() ? g.reshape({-1}) : torch::zeros({params[i].numel()}, params[i].options()));
      used.push_back(g.defined() ? 1.0 : 0.0);
    }
    int64_t count = static_cast<int64_t>(end - begin);
    pieces.push_back(torch::tensor(used, torch::kFloat64).to(dtype));
    std::vector<torch::Tensor> bucket{torch::cat(pieces)};
    group_->all_reduce(bucket, Reduction::kSum, "averaging gradients");
    auto flat = bucket[0];
    auto used_by = flat.narrow(0, flat.numel() - count, count).to(torch::kFloat64).contiguous();
    const double* ranks_using = used_by.data_ptr<double>();
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      auto& p = params[i];
      auto mean = flat.narrow(0, offset, p.numel()).view(p.sizes()).div_(world);
      offset += p.numel();
      if (ranks_using[i - begin] == 0) continue;  // no rank used it
      if (p.grad().defined()) p.mutable_grad().copy_(mean);
      else p.mutable_grad() = mean.clone();
    }
    begin = end;
  }
}

std::vector<double> DdpStrategy::all_reduce(const std::vector<double>& values, Reduction op, const char* what) {
  return group_ ? group_->all_reduce(values, op, what) : values;
}

std::vector<std::string> DdpStrategy::all_gather(const std::string& bytes, const char* what) {
  return group_ ? group_->all_gather(bytes, what) : std::vector<std::string>{bytes};
}

}  // namespace j2v::engine
