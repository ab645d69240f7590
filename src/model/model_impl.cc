#include "model/model_impl.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <numeric>

#include "base/json_builder.h"
#include "base/raw_json.h"
#include "data/record_batch.h"
#include "engine/checkpoint_io.h"
#include "engine/components.h"
#include "engine/trainer.h"
#include "fields/registry.h"
#include "model/item_mask.h"
#include "model/model.h"
#include "nn/packed_rows.h"
#include "nn/random.h"
#include "schema/schema.h"

namespace j2v {

namespace {
constexpr int64_t kValued = static_cast<int64_t>(CellState::kValued);
constexpr int64_t kMasked = static_cast<int64_t>(CellState::kMasked);
constexpr int64_t kPadded = static_cast<int64_t>(CellState::kPadded);

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The cell states in the order of their names, as a tree prints a state's probabilities.
const std::vector<int>& states_by_name() {
  static const std::vector<int> order = [] {
    std::vector<int> states(kNumCellStates);
    std::iota(states.begin(), states.end(), 0);
    std::sort(states.begin(), states.end(),
              [](int a, int b) { return std::string_view(cell_state_name(a)) < cell_state_name(b); });
    return states;
  }();
  return order;
}

// "'note' is not in the checkpoint; 'hour' is a category here but a number in the checkpoint;
// 'merchant': max_vocab_size 64 here, 256 in the checkpoint".
std::string describe_field_differences(const nlohmann::json& configured, const nlohmann::json& saved) {
  auto brief = [](const nlohmann::json& v) {
    std::string text = v.dump();
    return text.size() > 80 ? text.substr(0, 77) + "..." : text;
  };
  std::vector<std::string> parts;
  for (const auto& [name, spec] : configured.items()) {
    if (!saved.contains(name)) parts.push_back(fmt::format("'{}' is not in the checkpoint", name));
    else if (saved[name].value("type", "") != spec.value("type", ""))
      parts.push_back(fmt::format("'{}' is a {} here but a {} in the checkpoint", name, spec.value("type", "?"),
                                  saved[name].value("type", "?")));
    else if (saved[name] != spec) {
      std::vector<std::string> options;
      for (const auto& [key, value] : spec.items())
        if (!saved[name].contains(key) || saved[name][key] != value)
          options.push_back(fmt::format("{} {} here, {} in the checkpoint", key, brief(value),
                                        saved[name].contains(key) ? brief(saved[name][key]) : "unset"));
      for (const auto& [key, value] : saved[name].items())
        if (!spec.contains(key)) options.push_back(fmt::format("{} unset here, {} in the checkpoint", key, brief(value)));
      parts.push_back(fmt::format("'{}': {}", name, fmt::join(options, ", ")));
    }
  }
  for (const auto& [name, spec] : saved.items())
    if (!configured.contains(name)) parts.push_back(fmt::format("'{}' (in the checkpoint) is missing", name));
  return fmt::format("{}", fmt::join(parts, "; "));
}

std::string module_name(size_t index, const std::string& field) {
  std::string name = fmt::format("field{}_", index);
  for (char c : field) name += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return name;
}

}  // namespace

namespace {
Schema named(Schema schema, const std::string& name) {
  schema.name = name;
  return schema;
}
}  // namespace

ModelImpl::ModelImpl(Schema schema, ModelOptions options)
    : ModelImpl(nullptr, std::move(options)) {
  codec_ = std::make_shared<RecordCodec>(named(std::move(schema), options_.name()));
  set_fields();
}

ModelImpl::ModelImpl(std::shared_ptr<RecordCodec> codec, ModelOptions options)
    : codec_(std::move(codec)), options_(std::move(options)) {
  options_.validate();
  if (codec_) set_fields();
}

void ModelImpl::set_fields() {
  input_index_.assign(fields().size(), -1);
  token_of_field_.assign(fields().size(), -1);
  nets_.assign(tree().branches.size(), BranchNet{});
  n_inputs_ = 0;
  for (size_t b = 0; b < tree().branches.size(); ++b) {
    for (size_t f : tree().branches[b].leaves) {
      if (fields()[f]->spec().target) continue;  // targets are always pruned: never a token
      token_of_field_[f] = static_cast<int64_t>(nets_[b].inputs.size());
      nets_[b].inputs.push_back(f);
    }
  }
  // State embeddings and pruning are numbered over all inputs, in field order.
  for (size_t f = 0; f < fields().size(); ++f)
    if (!fields()[f]->spec().target) input_index_[f] = n_inputs_++;
  save_hyperparameters({{"model", options_.to_json()}, {"schema", schema().to_json()}});
}

void ModelImpl::build_network() {
  int64_t d = options_.d_model(), heads = options_.n_heads();
  FieldModuleOptions fo;
  fo.d_model = d;
  fo.dropout = options_.dropout();
  for (size_t f = 0; f < fields().size(); ++f)
    field_modules_.push_back(register_module(module_name(f, fields()[f]->spec().name), fields()[f]->make_module(fo)));
  state_embedding_ = register_module("state_embedding", torch::nn::Embedding(n_inputs_ * kNumCellStates, d));
  // Parameter names: the root's are those of a flat model, so flat checkpoints stay loadable.
  for (size_t b = 0; b < tree().branches.size(); ++b) {
    const auto& node = tree().branches[b];
    auto& net = nets_[b];
    std::string prefix = b == 0 ? "" : module_name(b, node.address.leaf()) + "_";
    int64_t tokens = static_cast<int64_t>(net.inputs.size() + node.children.size());
    net.position = register_parameter(b == 0 ? "field_position" : prefix + "position", torch::randn({tokens, d}) * 0.02);
    int64_t layers = b == 0 ? options_.n_layers() : node.n_layers;
    int64_t kv_heads = node.attention == "mqa"   ? 1
                       : node.attention == "gqa" ? (node.n_kv_heads > 0 ? node.n_kv_heads : std::max<int64_t>(1, heads / 2))
                                                 : heads;
    if (heads % kv_heads != 0)
      throw SchemaError(fmt::format("branch '{}': n_kv_heads {} must divide model.n_heads {}", node.address.str(),
                                    kv_heads, heads));
    // One block inside each slot before any across slots: an item's fields meet first, so a
    // property of one item (a fragile SKU that is also expensive) is one token's feature
    // before the list is mixed and pooled (per-field tokens mixed list-wide learned it
    // slowly if at all, at L x T times the attention cost).
    if (b > 0) {
      net.item_block = register_module(prefix + "item_block", nn::TransformerBlock(d, heads, options_.dropout()));
      net.slot_pool = register_module(prefix + "slot_pool", nn::LearnedQueryPooling(d, heads, 1, options_.dropout()));
    }
    for (int64_t i = 0; i < layers; ++i)
      net.blocks.push_back(register_module(fmt::format("{}block{}", prefix, i),
                                           nn::TransformerBlock(d, heads, options_.dropout(), kv_heads,
                                                                node.attention != "none")));
    net.norm = register_module(b == 0 ? "final_norm" : prefix + "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    if (b > 0) net.pool = register_module(prefix + "pool", nn::LearnedQueryPooling(d, heads, 1, options_.dropout()));
  }
  record_pool_ = register_module("record_pool", nn::LearnedQueryPooling(d, heads, 1, options_.dropout()));
  decoder_ = register_module("decoder", nn::LearnedQueryPooling(d, heads, static_cast<int64_t>(fields().size()),
                                                                options_.dropout()));
  built_ = true;
  build_members();
}

void ModelImpl::build_members() {
  members_.clear();
  ModelOptions one = options_;
  one.ensemble(1);
  for (int64_t m = 1; m < options_.ensemble(); ++m) {
    auto member = std::make_shared<ModelImpl>(codec_, one);
    member->build_network();
    member->pack_items_ = pack_items_;
    members_.push_back(register_module(fmt::format("member{}", m), member));
  }
}

namespace {
// Unmasks the first key of every row whose keys are all masked: softmax over nothing is NaN.
void keep_one_key(torch::Tensor& padding) {
  auto all = padding.all(1);
  if (all.any().item<bool>()) padding.select(1, 0).masked_fill_(all, false);
}
}  // namespace

int64_t ModelImpl::batch_rows(const std::vector<FieldTensors>& cells) const {
  return cells.empty() ? 0 : cells[0].state.size(0) / tree().leaf_slots(0);
}

ModelImpl::Outputs ModelImpl::forward(const std::vector<FieldTensors>& inputs, const std::vector<torch::Tensor>& present,
                                      const torch::Tensor& pruned, const std::vector<Decode>& decode,
                                      bool with_record) {
  int64_t B = batch_rows(inputs);
  size_t n_branches = tree().branches.size();
  Outputs out;
  out.branch.resize(n_branches);
  out.padding.resize(n_branches);
  out.pooled.resize(n_branches);
  out.slots.resize(n_branches);
  // Children before parents: a branch's pooled token is an input of its parent.
  for (size_t b = n_branches; b-- > 0;) {
    const auto& node = tree().branches[b];
    auto& net = nets_[b];
    int64_t L = node.length, N = B * node.parent_slots, cells = N * L;
    auto empty_slot = present[b].logical_not();
    // In a list branch, only the slots that hold an item are embedded and go through the item
    // block (packed): the others are padding, about half the slots of a typical history, and
    // would cost as much as items. A slot without an item gets zero tokens, which the list
    // blocks mask and nothing decodes.
    torch::Tensor held;
    bool pack = false;
    if (b > 0) {
      held = present[b].nonzero().view({-1});
      pack = pack_items_ && held.numel() < cells;
    }
    auto rows_of = [&](const torch::Tensor& t) { return pack && t.defined() ? t.index_select(0, held) : t; };
    const int64_t n_tokens = static_cast<int64_t>(net.inputs.size() + node.children.size());
    const int64_t rows = pack ? held.numel() : cells;
    torch::Tensor x, padding;  // [rows, T, d], [rows, T]
    if (rows > 0 || b == 0) {
      std::vector<torch::Tensor> tokens, absent;
      for (size_t f : net.inputs) {
        const auto& full = inputs[f];
        FieldTensors c{rows_of(full.state), rows_of(full.values), rows_of(full.indices)};
        auto valued = (c.state == kValued).to(torch::kFloat).unsqueeze(1);
        tokens.push_back(state_embedding_(c.state + input_index_[f] * kNumCellStates) + field_modules_[f]->embed(c) * valued);
        auto gone = empty_slot;
        if (pruned.defined() && pruned.numel() > 0) {
          auto p = pruned.select(1, input_index_[f]);
          gone = gone.logical_or(node.slots > 1 ? p.repeat_interleave(node.slots) : p);
        }
        absent.push_back(rows_of(gone));
      }
      for (size_t c : node.children) {
        tokens.push_back(rows_of(out.pooled[c]));
        absent.push_back(rows_of(empty_slot));
      }
      x = torch::stack(tokens, 1) + net.position.unsqueeze(0);
      padding = torch::stack(absent, 1);
      // A padding slot, or one whose every token is pruned, would have nothing to attend to.
      keep_one_key(padding);
    }
    if (b == 0) {
      for (auto& block : net.blocks) x = block->forward(x, padding);
      out.branch[0] = net.norm(x);
      out.padding[0] = padding;
      continue;
    }
    // An item's fields meet first, in a block of their own, and are pooled into one token
    // per slot; the blocks across the list then mix L slot tokens, not L x T field tokens.
    // The items' own tokens are kept only where something reads them: a decoded field of this
    // branch, or embeddings and payloads outside training.
    bool items_read = !is_training();
    for (const auto& d : decode) items_read = items_read || tree().branch_of_leaf[d.field] == static_cast<int>(b);
    torch::Tensor item_tokens, slot_tokens;
    const int64_t d_model = options_.d_model();
    // The whole grid's padding where no slot holds an item: every token absent but the first
    // (keep_one_key); the held slots' rows are copied in over it.
    auto padding_without_items = [&] {
      auto grid = torch::ones({cells, n_tokens}, torch::kBool);
      grid.select(1, 0).fill_(false);
      return grid;
    };
    if (rows > 0) {
      auto items = net.item_block->forward(x, padding);
      slot_tokens = net.slot_pool->forward(items, padding).select(1, 0);
      if (items_read) item_tokens = net.norm(items);
      if (pack) {
        slot_tokens = nn::unpack_rows(slot_tokens, held, cells);
        if (items_read) {
          item_tokens = nn::unpack_rows(item_tokens, held, cells);
          padding = padding_without_items().index_copy_(0, held, padding);
        }
      }
    } else {  // no slot holds an item
      slot_tokens = torch::zeros({cells, d_model}, net.position.options());
      if (items_read) {
        item_tokens = torch::zeros({cells, n_tokens, d_model}, net.position.options());
        padding = padding_without_items();
      }
    }
    auto slot = slot_tokens.view({N, L, -1});
    auto slot_padding = empty_slot.view({N, L}).clone();
    keep_one_key(slot_padding);  // an empty list
    torch::Tensor positions;
    if (L > 1) positions = torch::arange(L, torch::kLong);
    // The list blocks run on the held slots too; the others (masked) pass through as zeros.
    for (auto& block : net.blocks) slot = block->forward(slot, slot_padding, positions, pack ? held : torch::Tensor());
    slot = net.norm(slot);
    out.branch[b] = item_tokens;  // undefined where nothing reads it
    out.padding[b] = items_read ? padding : torch::Tensor();
    out.slots[b] = slot.reshape({cells, -1});
    out.pooled[b] = net.pool->forward(slot, slot_padding).select(1, 0);
  }
  bool nested_decode = false;
  for (const auto& d : decode) nested_decode = nested_decode || tree().branch_of_leaf[d.field] != 0;
  if (with_record || nested_decode) out.record = record_pool_->forward(out.branch[0], out.padding[0]).select(1, 0);
  out.decoded.resize(decode.size());
  // Fields decoded together share their keys: those of their branch.
  for (size_t b = 0; b < n_branches; ++b) {
    std::vector<int64_t> which;
    std::vector<size_t> entries;
    for (size_t k = 0; k < decode.size(); ++k)
      if (tree().branch_of_leaf[decode[k].field] == static_cast<int>(b)) {
        which.push_back(static_cast<int64_t>(decode[k].field));
        entries.push_back(k);
      }
    if (which.empty()) continue;
    torch::Tensor keys = out.branch[b], padding = out.padding[b];
    if (b > 0) {
      // A cell's heritage: the tokens of its own item, its slot after the list blocks, then
      // the pooled outputs of its branch and of every enclosing one, the record's last.
      const auto& node = tree().branches[b];
      int64_t cells = B * node.slots;
      std::vector<torch::Tensor> heritage{out.slots[b]};
      for (int a = static_cast<int>(b); a > 0; a = tree().branches[a].parent)
        heritage.push_back(out.pooled[a].repeat_interleave(node.slots / tree().branches[a].parent_slots, 0));
      heritage.push_back(out.record.repeat_interleave(node.slots, 0));
      keys = torch::cat({keys, torch::stack(heritage, 1)}, 1);
      padding = torch::cat({padding, torch::zeros({cells, static_cast<int64_t>(heritage.size())}, torch::kBool)}, 1);
    }
    auto decoded = decoder_->forward(keys, padding, torch::tensor(which, torch::kLong));
    for (size_t q = 0; q < entries.size(); ++q) out.decoded[entries[q]] = decoded.select(1, static_cast<int64_t>(q));
  }
  return out;
}

std::vector<FieldTensors> ModelImpl::corrupt(const std::vector<FieldTensors>& truth,
                                             const std::vector<torch::Tensor>& present, torch::Tensor& pruned,
                                             std::vector<Decode>& decode, torch::Generator* generator) {
  std::vector<FieldTensors> inputs = truth;
  int64_t B = batch_rows(truth);
  pruned = torch::zeros({B, n_inputs_}, torch::kBool);
  bool noisy = is_training() || generator != nullptr;
  auto rand = [&](int64_t n) {
    return torch::rand({n}, generator ? *generator : nn::thread_generator());
  };
  std::vector<torch::Tensor> hidden = noisy ? hide_items(tree(), present, rand) : std::vector<torch::Tensor>{};
  for (size_t f = 0; f < fields().size(); ++f) {
    const auto& spec = fields()[f]->spec();
    int b = tree().branch_of_leaf[f];
    int64_t slots = tree().branches[b].slots;
    const auto& in_list = present[b];  // padding is never decoded
    if (spec.target) {
      decode.push_back({f, in_list});
      continue;
    }
    auto rows = truth[f].state == kMasked;  // "<MASK>" in the input asks for imputation
    if (!hidden.empty() && hidden[b].defined()) {
      inputs[f].state = inputs[f].state.masked_fill(hidden[b], kMasked);
      rows = rows.logical_or(hidden[b]);
    }
    if (noisy && spec.p_mask > 0) {
      auto m = (rand(B * slots) < spec.p_mask).logical_and(in_list);
      inputs[f].state = inputs[f].state.masked_fill(m, kMasked);
      rows = rows.logical_or(m);
    }
    if (noisy && spec.p_prune > 0) {
      auto p = rand(B) < spec.p_prune;
      pruned.select(1, input_index_[f]).copy_(p);
      rows = rows.logical_or((slots > 1 ? p.repeat_interleave(slots) : p).logical_and(in_list));
    }
    if (is_training()) field_modules_[f]->augment_for_training(inputs[f]);
    if (rows.any().item<bool>()) decode.push_back({f, rows});
  }
  return inputs;
}

std::vector<torch::Tensor> ModelImpl::head_logits(const Outputs& out, const std::vector<Decode>& decode,
                                                  bool rows_only) {
  std::vector<torch::Tensor> logits(decode.size());
  for (size_t k = 0; k < decode.size(); ++k) {
    torch::Tensor decoded = out.decoded[k];
    if (rows_only) {
      auto idx = decode[k].rows.nonzero().squeeze(1);
      if (idx.numel() == 0) continue;
      decoded = decoded.index_select(0, idx);
    }
    // Under bf16-mixed the head runs in bfloat16; losses, metrics and payloads take float32.
    logits[k] = field_modules_[decode[k].field]->head(decoded).to(torch::kFloat32);
  }
  return logits;
}

std::vector<torch::Tensor> ModelImpl::ensemble_logits(const std::vector<FieldTensors>& inputs,
                                                      const std::vector<torch::Tensor>& present,
                                                      const torch::Tensor& pruned, const std::vector<Decode>& decode,
                                                      bool with_record, bool rows_only, Outputs& first) {
  first = forward(inputs, present, pruned, decode, with_record);
  auto sum = head_logits(first, decode, rows_only);
  if (members_.empty()) return sum;
  // Logits, not probabilities, are averaged: one rule for every datatype's content (a
  // number's prediction, a category's scores), and a cell's state scores alike.
  for (auto& member : members_) {
    auto theirs = member->head_logits(member->forward(inputs, present, pruned, decode, false), decode, rows_only);
    for (size_t k = 0; k < sum.size(); ++k)
      if (sum[k].defined()) sum[k] = sum[k] + theirs[k];
  }
  const double n = static_cast<double>(members_.size() + 1);
  for (auto& l : sum)
    if (l.defined()) l = l / n;
  return sum;
}

torch::Tensor ModelImpl::loss(const std::vector<torch::Tensor>& logits, const std::vector<FieldTensors>& truth,
                              const std::vector<Decode>& decode, bool update_metrics) {
  torch::Tensor total = torch::zeros({});
  for (size_t k = 0; k < decode.size(); ++k) {
    const auto& d = decode[k];
    if (!logits[k].defined()) continue;
    auto idx = d.rows.nonzero().squeeze(1);
    auto& module = field_modules_[d.field];
    const auto& field_logits = logits[k];
    auto true_state = truth[d.field].state.index_select(0, idx);
    auto field_loss = torch::nn::functional::cross_entropy(field_logits.narrow(1, 0, kNumCellStates), true_state);
    auto valued = true_state == kValued;
    auto valued_idx = idx.masked_select(valued);
    if (valued_idx.numel() > 0) {
      auto content = field_logits.index({valued}).narrow(1, kNumCellStates, module->content_width());
      field_loss = field_loss + module->content_loss(content, truth[d.field], valued_idx).mean();
      if (update_metrics && static_cast<size_t>(d.field) < metrics_.size() && metrics_[d.field])
        metrics_[d.field]->update(content.detach(), truth[d.field], valued_idx);
    }
    total = total + fields()[d.field]->spec().weight * field_loss;
  }
  return total;
}

torch::Tensor ModelImpl::training_step(engine::Batch& batch_base, int64_t) {
  auto& batch = engine::batch_as<RecordBatch>(batch_base);
  torch::Tensor pruned;
  std::vector<Decode> decode;
  auto inputs = corrupt(batch.fields(), batch.present(), pruned, decode, nullptr);
  // Each member learns on its own loss (the ensemble's averaged logits would make the members
  // one wide network, not an ensemble); the step's loss is their mean.
  auto loss_of = [&](ModelImpl& network) {
    auto out = network.forward(inputs, batch.present(), pruned, decode, false);
    return loss(network.head_logits(out, decode, true), batch.fields(), decode, false);
  };
  auto l = loss_of(*this);
  for (auto& member : members_) l = l + loss_of(*member);
  if (!members_.empty()) l = l / static_cast<double>(members_.size() + 1);
  // Nothing decoded (masks alone, and every list of the batch empty): skip the batch.
  if (!l.requires_grad()) return {};
  log("loss/train", l, engine::LogOptions().step(false).epoch(true).progress_bar().sync());
  return l;
}

torch::Tensor ModelImpl::evaluation_step(engine::Batch& batch_base, const std::string& stage) {
  auto& batch = engine::batch_as<RecordBatch>(batch_base);
  torch::Tensor pruned;
  std::vector<Decode> decode;
  // Without targets the loss is the masking loss; a fixed generator keeps it comparable
  // between epochs.
  torch::Generator generator = at::detail::createCPUGenerator(trainer() ? trainer()->batch_index() : 0);
  auto inputs = corrupt(batch.fields(), batch.present(), pruned, decode, schema().has_targets() ? nullptr : &generator);
  Outputs first;
  auto l = loss(ensemble_logits(inputs, batch.present(), pruned, decode, false, true, first), batch.fields(), decode,
                true);
  log("loss/" + stage, l, engine::LogOptions().step(false).epoch(true).progress_bar());
  return l;
}

void ModelImpl::validation_step(engine::Batch& batch, int64_t) { evaluation_step(batch, "validate"); }
void ModelImpl::test_step(engine::Batch& batch, int64_t) { evaluation_step(batch, "test"); }

void ModelImpl::reset_metrics() {
  metrics_.clear();
  for (auto& m : field_modules_) metrics_.push_back(m->new_metrics());
}

void ModelImpl::log_metrics(const std::string& stage) {
  for (size_t f = 0; f < metrics_.size(); ++f) {
    if (!metrics_[f]) continue;
    for (const auto& [metric, value] : metrics_[f]->compute())
      log(fmt::format("{}/{}:{}:content", fields()[f]->address().str(), stage, metric), value,
          engine::LogOptions().step(false).epoch(true).reduce("max"));
  }
  metrics_.clear();
}

void ModelImpl::write_nested(const RecordBatch& batch, int64_t row, int branch, JsonBuilder& out,
                             const std::function<void(int64_t slot)>& value) const {
  auto chain = tree().lineage(branch);  // the root, ..., branch
  std::function<void(size_t, int64_t)> level = [&](size_t depth, int64_t parent_slot) {
    const auto& node = tree().branches[chain[depth]];
    out.begin_array();
    int32_t n = batch.length(static_cast<size_t>(chain[depth]), row, parent_slot);
    for (int64_t j = 0; j < n; ++j) {
      int64_t slot = parent_slot * node.length + j;
      if (depth + 1 == chain.size()) value(slot);
      else level(depth + 1, slot);
    }
    out.end_array();
  };
  level(1, 0);
}

nlohmann::json ModelImpl::predict_step(engine::Batch& batch_base, int64_t) {
  auto& batch = engine::batch_as<RecordBatch>(batch_base);
  torch::Tensor pruned;
  std::vector<Decode> decode;
  auto inputs = corrupt(batch.fields(), batch.present(), pruned, decode, nullptr);
  Outputs out;
  auto logits = ensemble_logits(inputs, batch.present(), pruned, decode, options_.embed(), false, out);
  int64_t B = batch.size();
  auto normalized = [](const torch::Tensor& v) {
    return torch::nn::functional::normalize(v, torch::nn::functional::NormalizeFuncOptions().dim(1)).contiguous();
  };
  // Per field, what goes into each cell's payload: state and content where decoded, the
  // token's embedding where the field embeds.
  struct Cells {
    torch::Tensor states, content, wanted, embedding;
  };
  std::vector<Cells> cells(fields().size());
  for (size_t k = 0; k < decode.size(); ++k) {
    const auto& d = decode[k];
    auto& module = field_modules_[d.field];
    cells[d.field].states = torch::softmax(logits[k].narrow(1, 0, kNumCellStates), 1).contiguous();
    cells[d.field].content = logits[k].narrow(1, kNumCellStates, module->content_width()).contiguous();
    cells[d.field].wanted = d.rows.contiguous();
  }
  for (size_t f = 0; f < fields().size(); ++f) {
    if (!fields()[f]->spec().embed || token_of_field_[f] < 0) continue;
    int b = tree().branch_of_leaf[f];
    cells[f].embedding = normalized(out.branch[b].select(1, token_of_field_[f]));  // [B x slots, T, d]
  }
  // A row's predictions, one entry per address, in address order (the order a tree prints
  // them in, so JSON Lines output keeps its shape). An entry may be absent from a row.
  struct Entry {
    std::string address;
    std::function<bool(int64_t row)> present;
    std::function<void(int64_t row, JsonBuilder& out)> write;
  };
  std::vector<Entry> entries;
  for (size_t f = 0; f < fields().size(); ++f) {
    const auto& c = cells[f];
    if (!c.states.defined() && !c.embedding.defined()) continue;
    int b = tree().branch_of_leaf[f];
    int64_t slots = tree().branches[b].slots;
    const FieldModuleImpl* module = field_modules_[f].get();
    int64_t w = module->content_width(), d = c.embedding.defined() ? c.embedding.size(1) : 0;
    auto decoded = [&c](int64_t cell) { return c.states.defined() && c.wanted.data_ptr<bool>()[cell]; };
    auto has_payload = [&c, decoded](int64_t cell) { return decoded(cell) || c.embedding.defined(); };
    auto cell_payload = [&c, decoded, has_payload, module, w, d](int64_t cell, JsonBuilder& out) {
      if (!has_payload(cell)) return out.value(nullptr);
      out.begin_object();
      if (decoded(cell)) {
        out.key("content");
        out.value(module->content_payload(c.content.data_ptr<float>() + cell * w));
      }
      if (c.embedding.defined()) {
        out.key("embedding");
        out.numbers(c.embedding.data_ptr<float>() + cell * d, d);
      }
      if (decoded(cell)) {
        const float* s = c.states.data_ptr<float>() + cell * kNumCellStates;
        out.key("state");
        out.begin_object();
        for (int k : states_by_name()) {
          out.key(cell_state_name(k));
          out.number(s[k]);
        }
        out.end_object();
      }
      out.end_object();
    };
    entries.push_back({fields()[f]->address().str(),
                       [b, has_payload](int64_t i) { return b != 0 || has_payload(i); },
                       [this, &batch, b, slots, cell_payload](int64_t i, JsonBuilder& out) {
                         if (b == 0) return cell_payload(i, out);
                         write_nested(batch, i, b, out, [&](int64_t slot) { cell_payload(i * slots + slot, out); });
                       }});
  }
  auto always = [](int64_t) { return true; };
  auto embedding_object = [](const float* e, int64_t d, JsonBuilder& out) {
    out.begin_object();
    out.key("embedding");
    out.numbers(e, d);
    out.end_object();
  };
  torch::Tensor record_embedding;
  if (options_.embed()) {
    record_embedding = normalized(out.record);
    entries.push_back({schema().name, always, [&record_embedding, embedding_object](int64_t i, JsonBuilder& out) {
                         int64_t d = record_embedding.size(1);
                         embedding_object(record_embedding.data_ptr<float>() + i * d, d, out);
                       }});
  }
  std::vector<torch::Tensor> branch_embeddings(tree().branches.size());
  for (size_t b = 1; b < tree().branches.size(); ++b) {
    const auto& node = tree().branches[b];
    if (!node.embed) continue;
    branch_embeddings[b] = normalized(out.pooled[b]);  // one per parent slot
    const torch::Tensor& v = branch_embeddings[b];
    entries.push_back({node.address.str(), always, [this, &batch, &node, &v, embedding_object](int64_t i, JsonBuilder& out) {
                         int64_t d = v.size(1), ps = node.parent_slots;
                         auto one = [&](int64_t slot) { embedding_object(v.data_ptr<float>() + (i * ps + slot) * d, d, out); };
                         if (node.parent == 0) return one(0);
                         write_nested(batch, i, node.parent, out, one);
                       }});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.address < b.address; });
  auto write_predictions = [&](int64_t i, JsonBuilder& out) {
    out.begin_object();
    for (const auto& entry : entries) {
      if (!entry.present(i)) continue;
      out.key(entry.address);
      entry.write(i, out);
    }
    out.end_object();
  };

  nlohmann::json rows = nlohmann::json::array();
  std::string text;
  for (int64_t i = 0; i < B; ++i) {
    // The record as it was read (the encoder accepted it as one JSON object): verbatim, in
    // its own key order, and without a parse and a print per row.
    std::string_view raw = batch.record(i);
    while (!raw.empty() && is_json_space(raw.back())) raw.remove_suffix(1);
    while (!raw.empty() && is_json_space(raw.front())) raw.remove_prefix(1);
    nlohmann::json predictions;
    if (text_predictions()) {  // the writer only prints: no tree to build, print and free
      text.clear();
      JsonTextBuilder builder(text);
      write_predictions(i, builder);
      predictions = raw_json(text);
    } else {
      JsonTreeBuilder builder;
      write_predictions(i, builder);
      predictions = builder.take();
    }
    rows.push_back({{"inputs", raw_json(raw)}, {"predictions", std::move(predictions)}});
  }
  return rows;
}

std::vector<OutputColumn> ModelImpl::predict_output_types() const {
  std::vector<std::pair<std::string, ValueType>> states;
  for (int k = 0; k < kNumCellStates; ++k) states.emplace_back(cell_state_name(k), ValueType::float64());
  auto state = ValueType::structure(std::move(states));
  // A cell of a branch is a list per enclosing branch: one level each.
  auto lists = [](ValueType type, int depth) {
    for (int i = 0; i < depth; ++i) type = ValueType::list(std::move(type));
    return type;
  };
  auto embedding = [] { return ValueType::structure({{"embedding", ValueType::list(ValueType::float32())}}); };
  std::vector<std::pair<std::string, ValueType>> members;
  if (options_.embed()) members.emplace_back(schema().name, embedding());
  for (size_t b = 1; b < tree().branches.size(); ++b) {
    const auto& node = tree().branches[b];
    if (node.embed) members.emplace_back(node.address.str(), lists(embedding(), tree().branches[node.parent].depth));
  }
  for (size_t f = 0; f < fields().size(); ++f) {
    std::vector<std::pair<std::string, ValueType>> cell = {{"state", state}, {"content", field_modules_[f]->content_type()}};
    if (fields()[f]->spec().embed && token_of_field_[f] >= 0)
      cell.emplace_back("embedding", ValueType::list(ValueType::float32()));
    members.emplace_back(fields()[f]->address().str(),
                         lists(ValueType::structure(std::move(cell)), tree().branches[tree().branch_of_leaf[f]].depth));
  }
  return {{"inputs", ValueType::json()}, {"predictions", ValueType::structure(std::move(members))}};
}

std::vector<engine::ParameterGroup> ModelImpl::parameter_groups() {
  // Weight decay on matrices only: decaying norms, biases and frequencies hurts.
  engine::ParameterGroup decay{{}, true}, no_decay{{}, false};
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    bool is_norm = name.find("norm") != std::string::npos;
    (p.value().dim() >= 2 && !is_norm && name.find("frequencies") == std::string::npos ? decay : no_decay)
        .params.push_back(p.value());
  }
  return {decay, no_decay};
}

std::vector<engine::OptimizerConfig> ModelImpl::configure_optimizers() {
  const auto& o = options_.optimizer();
  nlohmann::json args = {{"lr", o.lr()}, {"weight_decay", o.weight_decay()}};
  if (o.name() == "sgd") args["momentum"] = o.momentum();
  auto optimizer = engine::make_optimizer(o.name(), args, *this);
  engine::OptimizerConfig config;
  config.optimizer = optimizer;
  const auto& s = options_.scheduler();
  if (s.name() == "warmup_cosine") {
    int64_t total = trainer() ? trainer()->estimated_stepping_batches() : 1000;
    config.scheduler = std::make_shared<engine::WarmupCosineScheduler>(
        *optimizer, static_cast<int64_t>(s.warmup_fraction() * total), total, s.min_lr_ratio());
  } else {
    config.scheduler = std::make_shared<engine::ConstantScheduler>(*optimizer);
  }
  return {config};
}

void ModelImpl::setup(engine::Stage stage) {
  // The data module fits the codec in its own setup, which the Trainer runs first.
  if (!built_ && codec_->fitted()) {
    build_network();
    if (weight_source_) {
      SchemaChange report;
      adopt_weights(*weight_source_, weight_reset_, report);
      weight_source_.reset();
    }
  }
  if (!built_)
    throw std::invalid_argument(fmt::format(
        "the model has not been trained: {} needs weights (run fit first, or pass a checkpoint)",
        engine::stage_name(stage)));
}

void ModelImpl::on_save_checkpoint(nlohmann::json& checkpoint) {
  checkpoint["schema"] = schema().to_json();
  checkpoint["options"] = options_.to_json();
  checkpoint["fields"] = codec_->state_json();
}

void ModelImpl::on_load_checkpoint(const nlohmann::json& checkpoint) {
  if (!checkpoint.contains("schema") || !checkpoint.contains("fields"))
    throw engine::CheckpointError("the checkpoint holds no json2vec model (no schema)");
  Schema saved = Schema::from_json(checkpoint["schema"]);
  add_options_saved_before_they_existed(saved);
  if (built_) {
    if (saved.to_json() != schema().to_json())
      throw engine::CheckpointError("the checkpoint's schema differs from this model's; load it with Model::load");
    // Loading by name would leave members this model has and the checkpoint lacks at their
    // initial weights, or drop the checkpoint's extra members without a word.
    int64_t saved_ensemble = checkpoint.value("options", nlohmann::json::object()).value("ensemble", int64_t{1});
    if (saved_ensemble != options_.ensemble())
      throw engine::CheckpointError(fmt::format(
          "the checkpoint holds an ensemble of {} (model.ensemble) and this model one of {}: give model.ensemble={}",
          saved_ensemble, options_.ensemble(), saved_ensemble));
    return;
  }
  // A model given fields (a config's) must be the one the weights were trained for: loading
  // the checkpoint's silently would run another model than the config says.
  if (!schema().fields.empty()) {
    auto difference = describe_field_differences(schema().to_json()["fields"], saved.to_json()["fields"]);
    if (!difference.empty())
      throw engine::CheckpointError("the config's fields differ from the checkpoint's: " + difference +
                                    " (give the fields it was trained with, or none to use the checkpoint's)");
  }
  // The checkpoint's schema and options win: they are what the weights were trained for.
  options_ = ModelOptions::from_json(checkpoint.value("options", nlohmann::json::object()));
  try {
    codec_->load(named(std::move(saved), options_.name()), checkpoint["fields"]);
  } catch (const std::invalid_argument& e) {
    throw engine::CheckpointError(std::string("the checkpoint does not fit its schema: ") + e.what());
  }
  set_fields();
  build_network();
}

std::shared_ptr<engine::Module> ModelImpl::replicate() {
  // Same codec and network layout: the Trainer copies the weights over.
  auto copy = std::make_shared<ModelImpl>(codec_, options_);
  copy->build_network();
  copy->set_item_packing(pack_items_);
  return copy;
}

std::shared_ptr<ModelImpl> ModelImpl::clone_model() const {
  if (!built_) throw std::logic_error("clone_model: the model has no network yet");
  auto copy = std::make_shared<ModelImpl>(codec_, options_);
  copy->build_network();
  copy->set_item_packing(pack_items_);
  torch::NoGradGuard no_grad;
  auto from = named_parameters(true), to = copy->named_parameters(true);
  for (const auto& p : from) to[p.key()].copy_(p.value());
  auto from_buffers = named_buffers(true), to_buffers = copy->named_buffers(true);
  for (const auto& b : from_buffers) to_buffers[b.key()].copy_(b.value());
  copy->train(is_training());
  return copy;
}

nlohmann::json ModelImpl::predict_records(const std::vector<std::string>& records, int64_t batch_size, int threads) {
  if (!built_) throw std::invalid_argument("the model has not been trained: fit it or load a checkpoint first");
  auto buffer = RecordBuffer::from_strings(records, "<predict>");
  auto table = std::make_shared<EncodedTable>(codec_->encode(buffer, nullptr, threads));
  torch::NoGradGuard no_grad;
  bool was_training = is_training();
  eval();
  nlohmann::json all = nlohmann::json::array();
  int64_t bs = std::max<int64_t>(batch_size, 1);
  for (int64_t start = 0; start < table->rows; start += bs) {
    std::vector<int64_t> rows;
    for (int64_t i = start; i < std::min(table->rows, start + bs); ++i) rows.push_back(i);
    RecordBatch batch(table, std::move(rows));
    for (auto& row : predict_step(batch, start / bs)) {
      // Callers get a tree they can read and print, unless they asked for text.
      if (!text_predictions()) materialize_raw_json(row);
      all.push_back(std::move(row));
    }
  }
  train(was_training);
  return all;
}

// ---- Model handle ---------------------------------------------------------------------
Model Model::from_schema(std::vector<FieldSpec> fields, ModelOptions options) {
  Schema schema;
  schema.name = options.name();
  schema.fields = std::move(fields);
  return from_schema(std::move(schema), std::move(options));
}

Model Model::from_schema(Schema schema, ModelOptions options) {
  return Model(std::make_shared<ModelImpl>(std::move(schema), std::move(options)));
}

Model Model::load(const std::string& checkpoint_path) {
  engine::CheckpointReader reader(checkpoint_path);
  const auto& module_state = reader.meta().value("module", nlohmann::json::object());
  if (!module_state.contains("schema"))
    throw engine::CheckpointError("checkpoint '" + checkpoint_path + "' holds no json2vec model");
  Schema saved = Schema::from_json(module_state["schema"]);
  add_options_saved_before_they_existed(saved);
  auto impl = std::make_shared<ModelImpl>(std::move(saved),
                                          ModelOptions::from_json(module_state.value("options", nlohmann::json::object())));
  impl->on_load_checkpoint(module_state);
  torch::serialize::InputArchive weights;
  if (!reader.read_nested("module", weights))
    throw engine::CheckpointError("checkpoint '" + checkpoint_path + "' has no weights");
  try {
    impl->load(weights);
  } catch (const std::exception& e) {
    std::string what = e.what();
    throw engine::CheckpointError("checkpoint '" + checkpoint_path + "' is damaged: " + what.substr(0, what.find('\n')));
  }
  impl->eval();
  return Model(impl);
}

nlohmann::json Model::predict(const std::vector<std::string>& json_records) const {
  return impl_->predict_records(json_records);
}
nlohmann::json Model::predict(const std::vector<std::string>& json_records, int64_t batch_size, int threads) const {
  return impl_->predict_records(json_records, batch_size, threads);
}
bool Model::trained() const { return impl_->built(); }
Model Model::clone() const {
  auto copy = impl_->clone_model();
  copy->eval();
  return Model(copy);
}
const Schema& Model::schema() const { return impl_->schema(); }
const ModelOptions& Model::options() const { return impl_->options(); }
const std::shared_ptr<RecordCodec>& Model::codec() const { return impl_->codec(); }
Model::operator engine::Module&() const { return *impl_; }

}  // namespace j2v
