// The schema as live model state: changing a model's schema (update, extend, remove, reset,
// override) or starting it from another model's checkpoint (init_from), keeping the field
// state and weights that still fit. A field keeps them when a field of the old model has its
// address, type and options; a branch keeps its network when a branch has its address; per-
// field rows of shared tensors (state embeddings, token positions, decoder queries) move with
// their field. Whatever has no counterpart is initialised as a fresh model's would be.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>

#include "engine/trainer.h"
#include "model/model.h"
#include "model/model_impl.h"
#include "schema/schema_edit.h"

namespace j2v {
namespace {

bool under(const std::string& address, const std::vector<std::string>& roots) {
  for (const auto& r : roots)
    if (address == r || address.rfind(r + ".", 0) == 0) return true;
  return false;
}

// A field keeps what it learned when it is still the same field: same datatype, same options
// (a new max_vocab_size is another vocabulary), and not reset.
bool same_field(const Field& mine, const Field& theirs, const std::vector<std::string>& reset) {
  return mine.type() == theirs.type() && mine.spec().options == theirs.spec().options &&
         !under(mine.address().str(), reset);
}

// Copies every parameter and buffer of `from` with the same name and shape into `to`.
void copy_module(const torch::nn::Module& from, torch::nn::Module& to, const std::string& label, SchemaChange& report) {
  auto source = from.named_parameters(true);
  for (auto& p : to.named_parameters(true)) {
    auto* s = source.find(p.key());
    std::string name = label + "." + p.key();
    if (s && s->sizes() == p.value().sizes()) {
      p.value().copy_(*s);
      report.kept_parameters.push_back(name);
    } else {
      report.new_parameters.push_back(name);
    }
  }
  auto source_buffers = from.named_buffers(true);
  for (auto& b : to.named_buffers(true)) {
    auto* s = source_buffers.find(b.key());
    if (s && s->sizes() == b.value().sizes()) b.value().copy_(*s);
  }
}

// Copies rows of a [rows, ...] tensor: rows[i] of `to` from rows[pairs[i]] of `from` (-1: keep).
void copy_rows(const torch::Tensor& from, torch::Tensor to, const std::vector<int64_t>& source_row,
               const std::string& name, SchemaChange& report) {
  int64_t copied = 0;
  for (size_t i = 0; i < source_row.size(); ++i) {
    if (source_row[i] < 0 || !from.sizes().slice(1).equals(to.sizes().slice(1))) continue;
    to[static_cast<int64_t>(i)].copy_(from[source_row[i]]);
    ++copied;
  }
  if (copied == to.size(0) && copied > 0) report.kept_parameters.push_back(name);
  else if (copied > 0) report.partly_kept_parameters.push_back(name);
  else report.new_parameters.push_back(name);
}

}  // namespace

std::string SchemaChange::summary() const {
  std::string out = fmt::format("field state kept: {} ({}); learned at the next fit: {}{}\n", kept_state.size(),
                                fmt::join(kept_state, ", "), refit_state.size(),
                                refit_state.empty() ? "" : fmt::format(" ({})", fmt::join(refit_state, ", ")));
  if (weights_pending) return out + "weights: carried over when fit builds the network\n";
  return out + fmt::format("weights: {} tensors kept, {} partly kept ({}), {} initialised\n", kept_parameters.size(),
                           partly_kept_parameters.size(), fmt::join(partly_kept_parameters, ", "),
                           new_parameters.size());
}

std::vector<std::string> ModelImpl::token_addresses(size_t b) const {
  std::vector<std::string> out;
  for (size_t f : nets_[b].inputs) out.push_back(fields()[f]->address().str());
  for (size_t c : tree().branches[b].children) out.push_back(tree().branches[c].address.str());
  return out;
}

void ModelImpl::adopt_weights(const ModelImpl& from, const std::vector<std::string>& reset, SchemaChange& report) {
  torch::NoGradGuard no_grad;
  std::map<std::string, size_t> their_field;
  for (size_t g = 0; g < from.fields().size(); ++g) their_field[from.fields()[g]->address().str()] = g;
  // mine -> theirs, for the fields that are still the same field
  std::vector<int64_t> field_source(fields().size(), -1);
  for (size_t f = 0; f < fields().size(); ++f) {
    auto it = their_field.find(fields()[f]->address().str());
    if (it != their_field.end() && same_field(*fields()[f], *from.fields()[it->second], reset))
      field_source[f] = static_cast<int64_t>(it->second);
  }
  for (size_t f = 0; f < fields().size(); ++f) {
    std::string label = fields()[f]->address().str();
    if (field_source[f] >= 0) {
      copy_module(*from.field_modules_[field_source[f]], *field_modules_[f], label, report);
    } else {
      for (auto& p : field_modules_[f]->named_parameters(true)) report.new_parameters.push_back(label + "." + p.key());
    }
  }
  // State embeddings: kNumCellStates rows per input field.
  std::vector<int64_t> state_rows(static_cast<size_t>(n_inputs_ * kNumCellStates), -1);
  for (size_t f = 0; f < fields().size(); ++f)
    if (input_index_[f] >= 0 && field_source[f] >= 0 && from.input_index_[field_source[f]] >= 0)
      for (int64_t s = 0; s < kNumCellStates; ++s)
        state_rows[input_index_[f] * kNumCellStates + s] = from.input_index_[field_source[f]] * kNumCellStates + s;
  copy_rows(from.state_embedding_->weight, state_embedding_->weight, state_rows, "state_embedding.weight", report);
  // Decoder: one query per field; its projections are shared by all fields.
  std::vector<int64_t> query_rows(fields().size(), -1);
  for (size_t f = 0; f < fields().size(); ++f) query_rows[f] = field_source[f];
  auto decoder_source = from.decoder_->named_parameters(true);
  for (auto& p : decoder_->named_parameters(true)) {
    if (p.key() == "queries") {
      copy_rows(*decoder_source.find("queries"), p.value(), query_rows, "decoder.queries", report);
    } else if (auto* s = decoder_source.find(p.key()); s && s->sizes() == p.value().sizes()) {
      p.value().copy_(*s);
      report.kept_parameters.push_back("decoder." + p.key());
    } else {
      report.new_parameters.push_back("decoder." + p.key());
    }
  }
  copy_module(*from.record_pool_, *record_pool_, "record_pool", report);
  // Branches by address; token positions by the address of each token.
  std::map<std::string, size_t> their_branch;
  for (size_t b = 0; b < from.tree().branches.size(); ++b) their_branch[from.tree().branches[b].address.str()] = b;
  for (size_t b = 0; b < tree().branches.size(); ++b) {
    std::string label = tree().branches[b].address.str();
    auto it = their_branch.find(label);
    auto& net = nets_[b];
    auto mark_new = [&](const torch::nn::Module& m, const std::string& what) {
      for (auto& p : m.named_parameters(true)) report.new_parameters.push_back(label + "." + what + "." + p.key());
    };
    bool keep = it != their_branch.end() && (b == 0 || !under(label, reset));
    const BranchNet* theirs = keep ? &from.nets_[it->second] : nullptr;
    std::vector<int64_t> token_rows;
    if (theirs) {
      auto their_tokens = from.token_addresses(it->second);
      for (const auto& address : token_addresses(b)) {
        auto t = std::find(their_tokens.begin(), their_tokens.end(), address);
        bool same = t != their_tokens.end() && !under(address, reset);
        // A field token keeps its position only where the field itself survived.
        auto f = their_field.find(address);
        if (same && f != their_field.end()) {
          auto mine = std::find_if(fields().begin(), fields().end(),
                                   [&](const std::shared_ptr<Field>& x) { return x->address().str() == address; });
          same = mine != fields().end() && same_field(**mine, *from.fields()[f->second], reset);
        }
        token_rows.push_back(same ? t - their_tokens.begin() : -1);
      }
      copy_rows(theirs->position, net.position, token_rows, label + ".position", report);
    } else {
      report.new_parameters.push_back(label + ".position");
    }
    auto pair = [&](auto mine, auto source, const std::string& what) {
      if (mine.is_empty()) return;
      if (theirs && !source.is_empty()) copy_module(*source.ptr(), *mine.ptr(), label + "." + what, report);
      else mark_new(*mine.ptr(), what);
    };
    pair(net.item_block, theirs ? theirs->item_block : nn::TransformerBlock{nullptr}, "item_block");
    pair(net.slot_pool, theirs ? theirs->slot_pool : nn::LearnedQueryPooling{nullptr}, "slot_pool");
    for (size_t i = 0; i < net.blocks.size(); ++i)
      pair(net.blocks[i], theirs && i < theirs->blocks.size() ? theirs->blocks[i] : nn::TransformerBlock{nullptr},
           fmt::format("block{}", i));
    pair(net.norm, theirs ? theirs->norm : torch::nn::LayerNorm{nullptr}, "norm");
    pair(net.pool, theirs ? theirs->pool : nn::LearnedQueryPooling{nullptr}, "pool");
  }
  // An ensemble's members: each from the source's member of its number, or, where the source
  // has fewer (a single pretrained network), from the source's first; the report is the
  // first member's, which every member repeats.
  for (size_t m = 0; m < members_.size(); ++m) {
    SchemaChange member_report;
    const ModelImpl& source = m < from.members_.size() ? *from.members_[m] : from;
    members_[m]->adopt_weights(source, reset, member_report);
  }
}

std::shared_ptr<ModelImpl> ModelImpl::with_schema(Schema schema, const std::vector<std::string>& reset,
                                                  SchemaChange& report) const {
  schema.name = options_.name();
  auto changed = std::make_shared<ModelImpl>(std::move(schema), options_);  // checks every datatype's options
  // What this model learned, or, before its first fit, what init_from gave it.
  const ModelImpl* source = built_ ? this : weight_source_.get();
  std::vector<std::string> resets = reset;
  if (!built_) resets.insert(resets.end(), weight_reset_.begin(), weight_reset_.end());
  const RecordCodec* state_source = codec_->fitted() || !weight_source_ ? codec_.get() : weight_source_->codec().get();
  report.kept_state = changed->codec_->adopt_state(
      *state_source, [&](const Field& mine, const Field& theirs) { return same_field(mine, theirs, resets); });
  for (const auto& f : changed->fields())
    if (!f->fitted()) report.refit_state.push_back(f->address().str());
  if (source && changed->codec_->fitted()) {
    changed->build_network();
    changed->adopt_weights(*source, resets, report);
    changed->train(is_training());
  } else if (source) {
    changed->weight_source_ = built_ ? std::static_pointer_cast<const ModelImpl>(shared_from_this()) : weight_source_;
    changed->weight_reset_ = resets;
    report.weights_pending = true;
  }
  return changed;
}

void ModelImpl::init_from(std::shared_ptr<const ModelImpl> source, SchemaChange& report) {
  if (built_ || codec_->fitted())
    throw std::logic_error("init_from: the model already has its state and weights; init_from applies before the first fit");
  report.kept_state = codec_->adopt_state(*source->codec(), [&](const Field& mine, const Field& theirs) {
    return same_field(mine, theirs, {});
  });
  for (const auto& f : fields())
    if (!f->fitted()) report.refit_state.push_back(f->address().str());
  report.weights_pending = true;
  weight_source_ = std::move(source);
  weight_reset_.clear();
}

// ---- Model handle ---------------------------------------------------------------------
std::vector<SchemaNode> Model::select(const Selector& selector) const { return select_nodes(schema(), selector); }

SchemaChange Model::change_schema(const std::string& action, Schema schema, const std::vector<std::string>& reset) {
  if (impl_->running())
    throw std::logic_error(action + ": the model's schema cannot change while a Trainer runs it (fit, validate, test "
                                    "or predict); change it before the run or after it returns");
  SchemaChange report;
  impl_ = impl_->with_schema(std::move(schema), reset, report);
  return report;
}

SchemaChange Model::update(const Selector& selector, const nlohmann::json& changes) {
  return change_schema("update", update_schema(schema(), selector, changes), {});
}

SchemaChange Model::extend(const Selector& selector, const std::vector<FieldSpec>& fields) {
  return change_schema("extend", extend_schema(schema(), selector, fields), {});
}

SchemaChange Model::remove(const Selector& selector) {
  return change_schema("remove", remove_from_schema(schema(), selector), {});
}

SchemaChange Model::reset(const Selector& selector) {
  return change_schema("reset", schema(), selected_addresses(schema(), selector, "reset"));
}

SchemaOverride Model::override(const Selector& selector, const nlohmann::json& changes) {
  auto before = impl_;
  auto change = update(selector, changes);
  return SchemaOverride(*this, std::move(before), std::move(change));
}

SchemaChange Model::init_from(const std::string& checkpoint_path) {
  if (impl_->running()) throw std::logic_error("init_from: not while a Trainer runs the model");
  auto source = Model::load(checkpoint_path);
  bool shared = false;
  for (const auto& mine : impl_->fields())
    for (const auto& theirs : source.impl().fields())
      shared = shared || (mine->address().str() == theirs->address().str() && mine->type() == theirs->type());
  if (!shared) {
    std::vector<std::string> theirs, mine;
    for (const auto& f : source.impl().fields()) theirs.push_back(f->address().str() + " (" + f->type() + ")");
    for (const auto& f : impl_->fields()) mine.push_back(f->address().str() + " (" + f->type() + ")");
    throw engine::CheckpointError(fmt::format(
        "model.init_from '{}': the checkpoint has no field in common with this model (same address and type), so "
        "nothing would carry over; its fields: {}; this model's: {}",
        checkpoint_path, fmt::join(theirs, ", "), fmt::join(mine, ", ")));
  }
  SchemaChange report;
  impl_->init_from(source.ptr(), report);
  return report;
}

}  // namespace j2v
