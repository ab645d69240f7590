#include "data/record_codec.h"

#include <map>
#include <stdexcept>

#include "fields/registry.h"

namespace j2v {

RecordCodec::RecordCodec(Schema schema) { build(std::move(schema)); }

void RecordCodec::build(Schema schema) {
  SchemaTree tree;
  auto fields = build_fields(schema, &tree);
  auto encoder = std::make_unique<RecordEncoder>(fields, tree);
  schema_ = std::move(schema);
  tree_ = std::move(tree);
  fields_ = std::move(fields);
  encoder_ = std::move(encoder);
  fitted_ = false;
}

void RecordCodec::fit(const RecordBuffer& records, const std::vector<int64_t>* rows, int threads) {
  if (fitted_) return;
  if ((rows ? rows->size() : records.size()) == 0)
    throw std::invalid_argument("no training records in '" + records.source() + "'");
  fit(encoder_->collect_stats(records, rows, threads));
}

void RecordCodec::fit(const std::vector<std::unique_ptr<FieldStats>>& stats) {
  if (fitted_) return;
  if (stats.size() != fields_.size()) throw std::logic_error("RecordCodec::fit: one statistics object per field expected");
  for (size_t f = 0; f < fields_.size(); ++f)
    if (!fields_[f]->fitted()) fields_[f]->fit(*stats[f]);
  fitted_ = true;
}

std::vector<std::string> RecordCodec::adopt_state(const RecordCodec& other,
                                                  const std::function<bool(const Field&, const Field&)>& same) {
  if (fitted_) throw std::logic_error("RecordCodec::adopt_state: this codec is already fitted");
  std::map<std::string, const Field*> theirs;
  for (const auto& f : other.fields_) theirs[f->address().str()] = f.get();
  std::vector<std::string> adopted;
  bool all = true;
  for (auto& f : fields_) {
    auto it = theirs.find(f->address().str());
    if (!f->fitted() && it != theirs.end() && it->second->fitted() && same(*f, *it->second)) {
      f->load_state_json(it->second->state_json());
      adopted.push_back(f->address().str());
    }
    all = all && f->fitted();
  }
  fitted_ = all;
  return adopted;
}

nlohmann::json RecordCodec::state_json() const {
  nlohmann::json states = nlohmann::json::object();
  for (const auto& f : fields_) states[f->address().str()] = f->state_json();
  return states;
}

void RecordCodec::load(Schema schema, const nlohmann::json& state) {
  // Built aside first: a state that does not fit leaves this codec as it was.
  RecordCodec loaded(std::move(schema));
  for (auto& f : loaded.fields_) {
    auto key = f->address().str();
    if (!state.contains(key)) throw std::invalid_argument("no state for field '" + key + "'");
    f->load_state_json(state[key]);
  }
  schema_ = std::move(loaded.schema_);
  tree_ = std::move(loaded.tree_);
  fields_ = std::move(loaded.fields_);
  encoder_ = std::move(loaded.encoder_);
  fitted_ = true;
}

}  // namespace j2v
