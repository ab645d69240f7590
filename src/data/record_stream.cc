#include "data/record_stream.h"
#include "base/json_read.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "base/errors.h"
#include "data/record_batch.h"

namespace j2v {

namespace {

uint64_t mix(uint64_t x) {  // splitmix64's finalizer: a good hash of one word
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash_of(std::initializer_list<uint64_t> words) {
  uint64_t h = 0x51ed2701f3a5c7b9ull;
  for (uint64_t w : words) h = mix(h ^ w);
  return h;
}

double unit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

// Copies of a record drawn with replacement: Poisson(rate), from the record's own hash so the
// draw does not depend on which thread reads it.
int poisson_copies(double rate, uint64_t h) {
  std::mt19937_64 rng(h);
  return std::poisson_distribution<int>(rate)(rng);
}

struct PooledRecord {
  std::string json;
  uint32_t file = 0;
  int64_t line = 0;
};

}  // namespace

Sharding sharding_from_name(const std::string& name) {
  if (name == "file") return Sharding::kFile;
  if (name == "chunk") return Sharding::kChunk;
  if (name == "record") return Sharding::kRecord;
  throw DataError("data.streaming.sharding: unknown value '" + name + "'; allowed: file, chunk, record");
}

uint64_t file_id_of(const std::string& key) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : key) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

bool Holdout::keeps(uint64_t file_id, int64_t record_index) const {
  if (fraction <= 0) return true;
  bool held = unit(hash_of({seed, 0x401d0u, file_id, static_cast<uint64_t>(record_index)})) < fraction;
  return held == keep_held;
}

RecordStream::RecordStream(RecordStreamSpec spec, std::shared_ptr<const RecordEncoder> encoder)
    : spec_(std::move(spec)), encoder_(std::move(encoder)) {
  if (spec_.workers < 1) spec_.workers = 1;
  if (spec_.world_size < 1 || spec_.rank < 0 || spec_.rank >= spec_.world_size)
    throw std::invalid_argument("a stream's rank must be in [0, world_size)");
  if (spec_.batch_size < 1) throw std::invalid_argument("data.batch_size must be >= 1");
  if (spec_.chunk_size < 1) throw std::invalid_argument("data.streaming.chunk_size must be >= 1");
  if (spec_.ordered) {
    spec_.sharding = Sharding::kChunk;
    spec_.chunk_size = spec_.batch_size;
    spec_.shuffle_buffer = 0;
    spec_.sample_rate = 1.0;
    spec_.replacement = false;
  }
  int64_t shards = static_cast<int64_t>(spec_.world_size) * spec_.workers;
  parquet_rows_.assign(spec_.files.size(), -1);
  if (spec_.sharding != Sharding::kFile && shards > 1)
    for (size_t f = 0; f < spec_.files.size(); ++f) parquet_rows_[f] = parquet_row_count(spec_.files[f].path);
}

RecordStream::~RecordStream() { stop_workers(); }

namespace {

// The SQL condition on file_row_number that keeps a shard's rows of a file whose first row
// is record `first` of the pass.
std::string shard_condition(Sharding sharding, int64_t first, int64_t chunk_size, uint64_t shards, uint64_t shard) {
  std::string index = "(file_row_number + " + std::to_string(first) + ")";
  if (sharding == Sharding::kChunk) index = "(" + index + " // " + std::to_string(chunk_size) + ")";
  return index + " % " + std::to_string(shards) + " = " + std::to_string(shard);
}

}  // namespace

int64_t RecordStream::estimated_batches() const {
  if (spec_.estimated_records < 0) return -1;
  double records = static_cast<double>(spec_.estimated_records) * spec_.sample_rate;
  return static_cast<int64_t>(std::ceil(records / static_cast<double>(spec_.batch_size)));
}

void RecordStream::stop_workers() {
  stopping_ = true;
  for (auto& q : queues_) q->close();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  queues_.clear();
  running_ = false;
  stopping_ = false;
}

void RecordStream::start_epoch(int64_t epoch) {
  // An endless stream (replacement) runs on across epochs: an epoch is just a number of batches.
  if (spec_.replacement && running_) return;
  stop_workers();
  epoch_ = epoch;
  taken_ = 0;
  turn_ = 0;
  active_ = spec_.workers;
  finished_.assign(spec_.workers, false);
  for (int w = 0; w < spec_.workers; ++w)
    queues_.push_back(std::make_unique<BoundedQueue<Item>>(static_cast<size_t>(std::max<int64_t>(spec_.queue_batches, 1))));
  for (int w = 0; w < spec_.workers; ++w) threads_.emplace_back([this, w, epoch] { run_worker(w, epoch); });
  running_ = true;
  // An endless stream counts its batches across epochs: it resumes whatever the epoch.
  if (resume_epoch_ >= 0 && (epoch == resume_epoch_ || spec_.replacement)) {
    // Resuming inside this epoch: the stream is the same, so skip what was already trained on.
    int64_t skip = resume_batches_;
    resume_epoch_ = -1;
    for (int64_t i = 0; i < skip && next(); ++i) {
    }
  }
}

std::shared_ptr<engine::Batch> RecordStream::next() {
  if (!running_) start_epoch(epoch_ < 0 ? 0 : epoch_);
  while (active_ > 0) {
    int w = turn_;
    turn_ = (turn_ + 1) % spec_.workers;
    if (finished_[w]) continue;
    Item item;
    if (!queues_[w]->pop(item)) item.end = true;
    if (item.error) {
      stop_workers();
      std::rethrow_exception(item.error);
    }
    if (item.end) {
      finished_[w] = true;
      --active_;
      continue;
    }
    ++taken_;
    return item.batch;
  }
  return nullptr;
}

nlohmann::json RecordStream::state_dict() const {
  // The stream is a function of these too: resuming with others would skip the wrong batches.
  return {{"epoch", epoch_}, {"batches", taken_}, {"workers", spec_.workers}, {"world_size", spec_.world_size},
          {"seed", spec_.seed}};
}

void RecordStream::load_state_dict(const nlohmann::json& state) {
  struct Setting {
    const char* key;
    int64_t now;
    const char* config_key;
  };
  for (const Setting& s : {Setting{"workers", spec_.workers, "data.num_workers"},
                           Setting{"world_size", spec_.world_size, "data.streaming.world_size"}}) {
    int64_t saved = state.value(s.key, int64_t{-1});
    if (saved >= 0 && saved != s.now)
      throw std::invalid_argument(fmt::format(
          "the checkpoint's stream ran with {} {} and this one has {}: resume with the same {} ({}) so "
          "the stream goes on where it stopped",
          saved, s.key, s.now, s.key, s.config_key));
  }
  resume_epoch_ = read_integer(state, "epoch", -1);
  resume_batches_ = read_integer(state, "batches", 0);
}

void RecordStream::run_worker(int worker, int64_t epoch) {
  auto& out = *queues_[worker];
  try {
    const auto& s = spec_;
    const uint64_t shards = static_cast<uint64_t>(s.world_size) * static_cast<uint64_t>(s.workers);
    const uint64_t shard = static_cast<uint64_t>(s.rank) * static_cast<uint64_t>(s.workers) + worker;
    const uint64_t seed = s.seed;
    size_t pool_capacity = s.shuffle_buffer > 1 ? static_cast<size_t>(std::max<int64_t>(1, s.shuffle_buffer / s.workers)) : 0;
    std::mt19937_64 rng(hash_of({seed, static_cast<uint64_t>(epoch), shard, 0x5u}));
    std::vector<PooledRecord> pool;
    pool.reserve(std::min<size_t>(pool_capacity, 1 << 20));

    RecordBuffer::Builder batch;
    int64_t batch_chunk = -1;
    auto flush = [&]() -> bool {
      if (batch.size() == 0) return true;
      auto records = batch.finish();
      auto table = std::make_shared<EncodedTable>(encoder_->encode(records, nullptr, 1));
      std::vector<int64_t> rows(static_cast<size_t>(table->rows));
      for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
      return out.push(Item{std::make_shared<RecordBatch>(table, std::move(rows)), false, nullptr});
    };
    auto emit = [&](std::string_view json, uint32_t file, int64_t line) -> bool {
      batch.add(json, s.files[file].path, line);
      return batch.size() < static_cast<size_t>(s.batch_size) || flush();
    };
    auto offer = [&](std::string_view json, uint32_t file, int64_t line) -> bool {
      if (pool_capacity == 0) return emit(json, file, line);
      if (pool.size() < pool_capacity) {
        pool.push_back({std::string(json), file, line});
        return true;
      }
      // The shuffle buffer is full: a random resident leaves, the newcomer takes its place.
      size_t j = static_cast<size_t>(rng() % pool.size());
      if (!emit(pool[j].json, pool[j].file, pool[j].line)) return false;
      pool[j].json.assign(json);
      pool[j].file = file;
      pool[j].line = line;
      return true;
    };

    std::vector<uint64_t> file_ids;
    for (const auto& file : s.files) file_ids.push_back(file_id_of(file.key));
    ReaderOptions reader_options;
    reader_options.threads = 1;
    reader_options.reuse_thread_duckdb = true;
    for (uint64_t pass = 0;; ++pass) {
      int64_t global = 0;
      bool any = false;
      for (size_t f = 0; f < s.files.size(); ++f) {
        if (s.sharding == Sharding::kFile && f % shards != shard) continue;
        ReaderOptions file_options = reader_options;
        const int64_t first = global;
        const bool pushed_down = parquet_rows_[f] >= 0;
        if (pushed_down) {
          file_options.parquet_row_filter = shard_condition(s.sharding, first, s.chunk_size, shards, shard);
          global += parquet_rows_[f];
        }
        auto reader = open_record_reader(s.files[f].path, file_options);
        int64_t in_file = 0;
        while (auto chunk = reader->next()) {
          if (stopping_) return;
          for (size_t i = 0; i < chunk->size(); ++i) {
            // A pushed-down read skips rows: each row brings its own number.
            int64_t r = pushed_down ? chunk->line(i) - 1 : in_file++;
            int64_t g = pushed_down ? first + r : global++;
            if (s.sharding == Sharding::kChunk && static_cast<uint64_t>(g / s.chunk_size) % shards != shard) continue;
            if (s.sharding == Sharding::kRecord && static_cast<uint64_t>(g) % shards != shard) continue;
            if (!s.holdout.keeps(file_ids[f], r)) continue;
            any = true;
            int copies = 1;
            if (s.replacement) {
              copies = poisson_copies(s.sample_rate, hash_of({seed, pass, f, static_cast<uint64_t>(r), 0x7u}));
            } else if (s.sample_rate < 1.0) {
              uint64_t h = hash_of({seed, static_cast<uint64_t>(epoch), f, static_cast<uint64_t>(r), 0x3u});
              copies = unit(h) < s.sample_rate ? 1 : 0;
            }
            if (s.ordered) {
              // One batch per chunk, so taking batches from the workers in turn is input order.
              int64_t c = g / s.chunk_size;
              if (c != batch_chunk && !flush()) return;
              batch_chunk = c;
            }
            for (int k = 0; k < copies; ++k)
              if (!offer(chunk->record(i), static_cast<uint32_t>(f), chunk->line(i))) return;
          }
        }
      }
      if (!s.replacement) break;
      if (!any) break;  // this shard has no records: an endless stream of nothing would hang
    }
    std::shuffle(pool.begin(), pool.end(), rng);
    for (const auto& p : pool)
      if (!emit(p.json, p.file, p.line)) return;
    if (!flush()) return;
    out.push(Item{nullptr, true, nullptr});
  } catch (...) {
    out.push(Item{nullptr, false, std::current_exception()});
  }
}

}  // namespace j2v
