#include "model/model_impl.h"

#include <fmt/format.h>

#include "data/record_batch.h"
#include "engine/checkpoint_io.h"
#include "engine/trainer.h"
#include "fields/registry.h"
#include "model/model.h"

namespace j2v {

namespace {
constexpr int64_t kValued = static_cast<int64_t>(CellState::kValued);
constexpr int64_t kMasked = static_cast<int64_t>(CellState::kMasked);
constexpr int64_t kPadded = static_cast<int64_t>(CellState::kPadded);

std::string module_name(size_t index, const std::string& field) {
  std::string name = fmt::format("field{}_", index);
  for (char c : field) name += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return name;
}

std::string quote_identifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) out += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}
}  // namespace

ModelImpl::ModelImpl(Schema schema, ModelOptions options) : schema_(std::move(schema)), options_(std::move(options)) {
  options_.validate();
  schema_.name = options_.name();
  set_fields();
}

void ModelImpl::set_fields() {
  fields_ = build_fields(schema_);
  encoder_ = std::make_unique<RecordEncoder>(fields_);
  input_fields_.clear();
  token_of_field_.assign(fields_.size(), -1);
  for (size_t f = 0; f < fields_.size(); ++f) {
    if (fields_[f]->spec().target) continue;  // targets are always pruned: never a token
    token_of_field_[f] = static_cast<int64_t>(input_fields_.size());
    input_fields_.push_back(f);
  }
  save_hyperparameters({{"model", options_.to_json()}, {"schema", schema_.to_json()}});
}

void ModelImpl::fit_fields(const RecordBuffer& records, const std::vector<int64_t>* rows, int threads) {
  if (built_) return;
  if ((rows ? rows->size() : records.size()) == 0)
    throw std::invalid_argument("no training records in '" + records.source() + "'");
  auto stats = encoder_->collect_stats(records, rows, threads);
  for (size_t f = 0; f < fields_.size(); ++f) fields_[f]->fit(*stats[f]);
  build_network();
}

void ModelImpl::build_network() {
  int64_t d = options_.d_model();
  FieldModuleOptions fo;
  fo.d_model = d;
  fo.dropout = options_.dropout();
  for (size_t f = 0; f < fields_.size(); ++f)
    field_modules_.push_back(register_module(module_name(f, fields_[f]->spec().name), fields_[f]->make_module(fo)));
  int64_t n_in = static_cast<int64_t>(input_fields_.size());
  field_position_ = register_parameter("field_position", torch::randn({n_in, d}) * 0.02);
  state_embedding_ = register_module("state_embedding", torch::nn::Embedding(n_in * kNumCellStates, d));
  for (int64_t i = 0; i < options_.n_layers(); ++i)
    blocks_.push_back(register_module(fmt::format("block{}", i),
                                      nn::TransformerBlock(d, options_.n_heads(), options_.dropout())));
  final_norm_ = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  record_pool_ = register_module("record_pool", nn::LearnedQueryPooling(d, options_.n_heads(), 1, options_.dropout()));
  decoder_ = register_module("decoder", nn::LearnedQueryPooling(d, options_.n_heads(), static_cast<int64_t>(fields_.size()),
                                                                options_.dropout()));
  built_ = true;
}

ModelImpl::Outputs ModelImpl::forward(const std::vector<FieldTensors>& inputs, const torch::Tensor& pruned,
                                      const std::vector<Decode>& decode, bool with_record) {
  std::vector<torch::Tensor> state_ids, contents;
  for (size_t j = 0; j < input_fields_.size(); ++j) {
    size_t f = input_fields_[j];
    const auto& cells = inputs[f];
    state_ids.push_back(cells.state + static_cast<int64_t>(j) * kNumCellStates);
    auto valued = (cells.state == kValued).to(torch::kFloat).unsqueeze(1);
    contents.push_back(field_modules_[f]->embed(cells) * valued);
  }
  auto x = state_embedding_(torch::stack(state_ids, 1)) + torch::stack(contents, 1) + field_position_.unsqueeze(0);
  for (auto& block : blocks_) x = block->forward(x, pruned);
  x = final_norm_(x);
  Outputs out;
  out.tokens = x;
  if (with_record) out.record = record_pool_->forward(x, pruned).select(1, 0);
  if (!decode.empty()) {
    std::vector<int64_t> which;
    for (const auto& d : decode) which.push_back(static_cast<int64_t>(d.field));
    out.decoded = decoder_->forward(x, pruned, torch::tensor(which, torch::kLong));
  }
  return out;
}

std::vector<FieldTensors> ModelImpl::corrupt(const std::vector<FieldTensors>& truth, torch::Tensor& pruned,
                                             std::vector<Decode>& decode, torch::Generator* generator) {
  std::vector<FieldTensors> inputs = truth;
  int64_t B = truth.empty() ? 0 : truth[0].state.size(0);
  pruned = torch::zeros({B, static_cast<int64_t>(input_fields_.size())}, torch::kBool);
  bool noisy = is_training() || generator != nullptr;
  auto rand = [&](int64_t n) {
    return generator ? torch::rand({n}, *generator) : torch::rand({n});
  };
  for (size_t f = 0; f < fields_.size(); ++f) {
    const auto& spec = fields_[f]->spec();
    if (spec.target) {
      decode.push_back({f, torch::ones({B}, torch::kBool)});
      continue;
    }
    auto rows = truth[f].state == kMasked;  // "<MASK>" in the input asks for imputation
    if (noisy && spec.p_mask > 0) {
      auto m = (rand(B) < spec.p_mask).logical_and(truth[f].state != kPadded);
      inputs[f].state = inputs[f].state.masked_fill(m, kMasked);
      rows = rows.logical_or(m);
    }
    if (noisy && spec.p_prune > 0) {
      auto p = rand(B) < spec.p_prune;
      pruned.select(1, token_of_field_[f]).copy_(p);
      rows = rows.logical_or(p);
    }
    if (is_training()) field_modules_[f]->augment_for_training(inputs[f]);
    if (rows.any().item<bool>()) decode.push_back({f, rows});
  }
  // A record with every token pruned would have nothing to attend to.
  if (pruned.numel() > 0) {
    auto all = pruned.all(1);
    if (all.any().item<bool>()) pruned.select(1, 0).masked_fill_(all, false);
  }
  return inputs;
}

torch::Tensor ModelImpl::loss(const Outputs& out, const std::vector<FieldTensors>& truth,
                              const std::vector<Decode>& decode, bool update_metrics) {
  torch::Tensor total = torch::zeros({});
  for (size_t k = 0; k < decode.size(); ++k) {
    const auto& d = decode[k];
    auto idx = d.rows.nonzero().squeeze(1);
    if (idx.numel() == 0) continue;
    auto& module = field_modules_[d.field];
    auto logits = module->head(out.decoded.select(1, static_cast<int64_t>(k)).index_select(0, idx));
    auto true_state = truth[d.field].state.index_select(0, idx);
    auto field_loss = torch::nn::functional::cross_entropy(logits.narrow(1, 0, kNumCellStates), true_state);
    auto valued = true_state == kValued;
    auto valued_idx = idx.masked_select(valued);
    if (valued_idx.numel() > 0) {
      auto content = logits.index({valued}).narrow(1, kNumCellStates, module->content_width());
      field_loss = field_loss + module->content_loss(content, truth[d.field], valued_idx).mean();
      if (update_metrics && static_cast<size_t>(d.field) < metrics_.size() && metrics_[d.field])
        metrics_[d.field]->update(content.detach(), truth[d.field], valued_idx);
    }
    total = total + fields_[d.field]->spec().weight * field_loss;
  }
  return total;
}

torch::Tensor ModelImpl::training_step(engine::Batch& batch_base, int64_t) {
  auto& batch = engine::batch_as<RecordBatch>(batch_base);
  torch::Tensor pruned;
  std::vector<Decode> decode;
  auto inputs = corrupt(batch.fields(), pruned, decode, nullptr);
  auto out = forward(inputs, pruned, decode, false);
  auto l = loss(out, batch.fields(), decode, false);
  log("loss/train", l, engine::LogOptions().step(false).epoch(true).progress_bar());
  return l;
}

torch::Tensor ModelImpl::evaluation_step(engine::Batch& batch_base, const std::string& stage) {
  auto& batch = engine::batch_as<RecordBatch>(batch_base);
  torch::Tensor pruned;
  std::vector<Decode> decode;
  // Without targets the loss is the masking loss; a fixed generator keeps it comparable
  // between epochs.
  torch::Generator generator = at::detail::createCPUGenerator(trainer() ? trainer()->batch_index() : 0);
  auto inputs = corrupt(batch.fields(), pruned, decode, schema_.has_targets() ? nullptr : &generator);
  auto out = forward(inputs, pruned, decode, false);
  auto l = loss(out, batch.fields(), decode, true);
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
      log(fmt::format("{}/{}:{}:content", fields_[f]->address().str(), stage, metric), value,
          engine::LogOptions().step(false).epoch(true).reduce("max"));
  }
  metrics_.clear();
}

nlohmann::json ModelImpl::predict_step(engine::Batch& batch_base, int64_t) {
  auto& batch = engine::batch_as<RecordBatch>(batch_base);
  torch::Tensor pruned;
  std::vector<Decode> decode;
  auto inputs = corrupt(batch.fields(), pruned, decode, nullptr);
  auto out = forward(inputs, pruned, decode, options_.embed());
  int64_t B = batch.size();
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t i = 0; i < B; ++i) {
    nlohmann::json input;
    std::string_view raw = batch.record(i);
    input = nlohmann::json::parse(raw.begin(), raw.end(), nullptr, false);
    rows.push_back({{"inputs", std::move(input)}, {"predictions", nlohmann::json::object()}});
  }
  for (size_t k = 0; k < decode.size(); ++k) {
    const auto& d = decode[k];
    auto& module = field_modules_[d.field];
    auto logits = module->head(out.decoded.select(1, static_cast<int64_t>(k)));
    auto states = torch::softmax(logits.narrow(1, 0, kNumCellStates), 1).contiguous();
    auto content = logits.narrow(1, kNumCellStates, module->content_width()).contiguous();
    auto rows_mask = d.rows.contiguous();
    const float* s = states.data_ptr<float>();
    const float* c = content.data_ptr<float>();
    const bool* wanted = rows_mask.data_ptr<bool>();
    int64_t w = module->content_width();
    const std::string address = fields_[d.field]->address().str();
    for (int64_t i = 0; i < B; ++i) {
      if (!wanted[i]) continue;
      nlohmann::json state = nlohmann::json::object();
      for (int k = 0; k < kNumCellStates; ++k) state[cell_state_name(k)] = s[i * kNumCellStates + k];
      rows[i]["predictions"][address] = {{"state", state}, {"content", module->content_payload(c + i * w)}};
    }
  }
  auto normalized = [](const torch::Tensor& v) {
    return torch::nn::functional::normalize(v, torch::nn::functional::NormalizeFuncOptions().dim(1)).contiguous();
  };
  auto put_embedding = [&](const std::string& address, const torch::Tensor& vectors) {
    auto v = normalized(vectors);
    int64_t d = v.size(1);
    const float* p = v.data_ptr<float>();
    for (int64_t i = 0; i < B; ++i)
      rows[i]["predictions"][address]["embedding"] = std::vector<float>(p + i * d, p + (i + 1) * d);
  };
  if (options_.embed()) put_embedding(schema_.name, out.record);
  for (size_t f = 0; f < fields_.size(); ++f)
    if (fields_[f]->spec().embed && token_of_field_[f] >= 0)
      put_embedding(fields_[f]->address().str(), out.tokens.select(1, token_of_field_[f]));
  return rows;
}

std::vector<std::pair<std::string, std::string>> ModelImpl::predict_output_types() const {
  std::string state = "STRUCT(";
  for (int k = 0; k < kNumCellStates; ++k) state += (k ? ", " : "") + quote_identifier(cell_state_name(k)) + " DOUBLE";
  state += ")";
  std::vector<std::string> members;
  if (options_.embed()) members.push_back(quote_identifier(schema_.name) + " STRUCT(embedding FLOAT[])");
  for (size_t f = 0; f < fields_.size(); ++f) {
    std::string t = "STRUCT(state " + state + ", content " + field_modules_[f]->content_duckdb_type();
    if (fields_[f]->spec().embed && token_of_field_[f] >= 0) t += ", embedding FLOAT[]";
    members.push_back(quote_identifier(fields_[f]->address().str()) + " " + t + ")");
  }
  std::string predictions = "STRUCT(";
  for (size_t i = 0; i < members.size(); ++i) predictions += (i ? ", " : "") + members[i];
  predictions += ")";
  return {{"inputs", "JSON"}, {"predictions", predictions}};
}

std::vector<engine::OptimizerConfig> ModelImpl::configure_optimizers() {
  // Weight decay on matrices only: decaying norms, biases and frequencies hurts.
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    bool is_norm = name.find("norm") != std::string::npos;
    (p.value().dim() >= 2 && !is_norm && name.find("frequencies") == std::string::npos ? decay : no_decay)
        .push_back(p.value());
  }
  const auto& o = options_.optimizer();
  std::shared_ptr<torch::optim::Optimizer> optimizer;
  if (o.name() == "sgd") {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::SGDOptions>(
                                   torch::optim::SGDOptions(o.lr()).momentum(o.momentum()).weight_decay(o.weight_decay())));
    groups.emplace_back(no_decay, std::make_unique<torch::optim::SGDOptions>(
                                      torch::optim::SGDOptions(o.lr()).momentum(o.momentum()).weight_decay(0)));
    optimizer = std::make_shared<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(o.lr()));
  } else if (o.name() == "adam") {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamOptions>(
                                   torch::optim::AdamOptions(o.lr()).weight_decay(o.weight_decay())));
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(o.lr())));
    optimizer = std::make_shared<torch::optim::Adam>(std::move(groups), torch::optim::AdamOptions(o.lr()));
  } else {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(o.lr()).weight_decay(o.weight_decay())));
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                      torch::optim::AdamWOptions(o.lr()).weight_decay(0.0)));
    optimizer = std::make_shared<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(o.lr()));
  }
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
  if (!built_)
    throw std::invalid_argument(fmt::format(
        "the model has not been trained: {} needs weights (run fit first, or pass --ckpt_path)", engine::stage_name(stage)));
}

void ModelImpl::on_save_checkpoint(nlohmann::json& checkpoint) {
  nlohmann::json states = nlohmann::json::object();
  for (const auto& f : fields_) states[f->address().str()] = f->state_json();
  checkpoint["schema"] = schema_.to_json();
  checkpoint["options"] = options_.to_json();
  checkpoint["fields"] = states;
}

void ModelImpl::on_load_checkpoint(const nlohmann::json& checkpoint) {
  if (!checkpoint.contains("schema") || !checkpoint.contains("fields"))
    throw engine::CheckpointError("the checkpoint holds no json2vec model (no schema)");
  Schema saved = Schema::from_json(checkpoint["schema"]);
  if (built_) {
    if (saved.to_json() != schema_.to_json())
      throw engine::CheckpointError("the checkpoint's schema differs from this model's; load it with Model::load");
    return;
  }
  // The checkpoint's schema and options win: they are what the weights were trained for.
  schema_ = std::move(saved);
  options_ = ModelOptions::from_json(checkpoint.value("options", nlohmann::json::object()));
  schema_.name = options_.name();
  set_fields();
  for (auto& f : fields_) {
    auto key = f->address().str();
    if (!checkpoint["fields"].contains(key))
      throw engine::CheckpointError("the checkpoint has no state for field '" + key + "'");
    f->load_state_json(checkpoint["fields"][key]);
  }
  build_network();
}

std::shared_ptr<engine::Module> ModelImpl::replicate() {
  // Same schema, field state and network layout: the Trainer copies the weights over.
  auto copy = std::make_shared<ModelImpl>(schema_, options_);
  nlohmann::json state;
  on_save_checkpoint(state);
  copy->on_load_checkpoint(state);
  return copy;
}

nlohmann::json ModelImpl::predict_records(const std::vector<std::string>& records, int64_t batch_size, int threads) {
  if (!built_) throw std::invalid_argument("the model has not been trained: fit it or load a checkpoint first");
  auto buffer = RecordBuffer::from_strings(records, "<predict>");
  auto table = std::make_shared<EncodedTable>(encoder_->encode(buffer, nullptr, threads));
  torch::NoGradGuard no_grad;
  bool was_training = is_training();
  eval();
  nlohmann::json all = nlohmann::json::array();
  int64_t bs = batch_size > 0 ? batch_size : options_.batch_size();
  for (int64_t start = 0; start < table->rows; start += bs) {
    std::vector<int64_t> rows;
    for (int64_t i = start; i < std::min(table->rows, start + bs); ++i) rows.push_back(i);
    RecordBatch batch(table, std::move(rows));
    for (auto& row : predict_step(batch, start / bs)) all.push_back(std::move(row));
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
  auto impl = std::make_shared<ModelImpl>(Schema::from_json(module_state["schema"]),
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
const Schema& Model::schema() const { return impl_->schema(); }
const ModelOptions& Model::options() const { return impl_->options(); }
Model::operator engine::Module&() const { return *impl_; }

}  // namespace j2v
