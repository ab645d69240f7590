// DateParts: a timestamp seen through its calendar parts (month, day of week, hour...),
// each a small category: one embedding per part, summed; decoded part by part with
// cross-entropy (the loss is the mean over parts). Stated rules:
//   - a string is ISO-8601 (2024-03-05, 2024-03-05T14:30, ...:05.123Z, ...+02:00), or,
//     with `format`, a strptime pattern ("%d/%m/%Y %H:%M");
//   - a number is Unix time in `unit` (s | ms), in UTC;
//   - the parts are those of the time as written (a +02:00 offset does not move the hour)
//     unless `utc: true`, which converts to UTC first;
//   - a string that is not such a date is "other"; a boolean, object or list is an error.
#include <fmt/format.h>

#include <fmt/ranges.h>

#include <charconv>
#include <cmath>
#include <ctime>
#include <set>

#include "fields/field_module.h"
#include "fields/option_checks.h"
#include "fields/registry.h"

namespace j2v {
namespace {

struct Part {
  const char* name;
  int64_t classes;
  int64_t first;  // the value of class 0 (1 for month 1..12, 0 for hour 0..23)
};
// week_of_year = (day_of_year - 1) / 7 + 1; week_of_month = (day_of_month - 1) / 7 + 1;
// day_of_week 1 = Monday ... 7 = Sunday.
constexpr Part kParts[] = {{"day_of_year", 366, 1},  {"week_of_year", 53, 1}, {"month_of_year", 12, 1},
                           {"day_of_month", 31, 1},  {"week_of_month", 5, 1}, {"day_of_week", 7, 1},
                           {"hour_of_day", 24, 0},   {"minute_of_hour", 60, 0}};

const Part* find_part(const std::string& name) {
  for (const auto& p : kParts)
    if (name == p.name) return &p;
  return nullptr;
}

struct CivilTime {
  int64_t year;
  int month, day, hour = 0, minute = 0, second = 0;
  int offset_minutes = 0;
};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int64_t& y, int& m, int& d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = yoe + era * 400 + (m <= 2);
}

bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
int days_in_month(int64_t y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : days[m - 1];
}

CivilTime from_unix_seconds(int64_t seconds) {
  int64_t days = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
  int64_t rest = seconds - days * 86400;
  CivilTime t{};
  civil_from_days(days, t.year, t.month, t.day);
  t.hour = static_cast<int>(rest / 3600);
  t.minute = static_cast<int>(rest % 3600 / 60);
  t.second = static_cast<int>(rest % 60);
  return t;
}

bool valid(const CivilTime& t) {
  return t.month >= 1 && t.month <= 12 && t.day >= 1 && t.day <= days_in_month(t.year, t.month) && t.hour >= 0 &&
         t.hour < 24 && t.minute >= 0 && t.minute < 60 && t.second >= 0 && t.second <= 60;
}

// Reads exactly `n` digits.
bool digits(std::string_view& s, int n, int& out) {
  if (static_cast<int>(s.size()) < n) return false;
  out = 0;
  for (int i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  s.remove_prefix(n);
  return true;
}

bool eat(std::string_view& s, char c) {
  if (s.empty() || s.front() != c) return false;
  s.remove_prefix(1);
  return true;
}

bool parse_iso8601(std::string_view s, CivilTime& t) {
  int year;
  if (!digits(s, 4, year) || !eat(s, '-') || !digits(s, 2, t.month) || !eat(s, '-') || !digits(s, 2, t.day)) return false;
  t.year = year;
  if (s.empty()) return valid(t);
  if (!eat(s, 'T') && !eat(s, 't') && !eat(s, ' ')) return false;
  if (!digits(s, 2, t.hour) || !eat(s, ':') || !digits(s, 2, t.minute)) return false;
  if (eat(s, ':')) {
    if (!digits(s, 2, t.second)) return false;
    if (eat(s, '.') || eat(s, ',')) {
      size_t n = 0;
      while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
      if (n == 0) return false;
      s.remove_prefix(n);
    }
  }
  if (s.empty() || eat(s, 'Z') || eat(s, 'z')) return s.empty() && valid(t);
  int sign = s.front() == '+' ? 1 : s.front() == '-' ? -1 : 0;
  if (sign == 0) return false;
  s.remove_prefix(1);
  int oh, om = 0;
  if (!digits(s, 2, oh)) return false;
  if (!s.empty() && (eat(s, ':'), true) && !digits(s, 2, om)) return false;
  if (!s.empty() || oh > 23 || om > 59) return false;
  t.offset_minutes = sign * (oh * 60 + om);
  return valid(t);
}

struct Settings {
  std::string format;  // empty: ISO-8601
  double unit_seconds = 1.0;
  bool utc = false;
};

// Parses a cell into its civil time; false when the string is not a date.
bool parse_time(const Scalar& v, const Settings& settings, CivilTime& t) {
  switch (v.kind) {
    case Scalar::Kind::kNumber: {
      double seconds = std::floor(v.number * settings.unit_seconds);
      if (!std::isfinite(seconds) || std::abs(seconds) > 1e14) return false;
      t = from_unix_seconds(static_cast<int64_t>(seconds));
      return true;
    }
    case Scalar::Kind::kString: {
      if (settings.format.empty()) return parse_iso8601(v.text, t);
      // strptime needs a terminated string; the buffer is reused, so this rarely allocates.
      thread_local std::string buffer;
      buffer.assign(v.text);
      std::tm tm{};
      tm.tm_mday = 1;  // a pattern without a day ("%Y-%m") means the first of the month
      const char* end = strptime(buffer.c_str(), settings.format.c_str(), &tm);
      if (end == nullptr) return false;
      while (*end == ' ') ++end;
      if (*end != '\0') return false;
      t = CivilTime{tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
      t.offset_minutes = static_cast<int>(tm.tm_gmtoff / 60);  // set by %z, else 0
      return valid(t);
    }
    case Scalar::Kind::kBool:
    case Scalar::Kind::kObject:
    case Scalar::Kind::kArray:
      throw EncodeError(fmt::format("is {}, but the field is a date (a string or Unix time)", v.kind_name()));
    default:
      return false;
  }
}

// The class index (0-based) of each part.
int64_t part_class(const Part& part, const CivilTime& t) {
  int64_t days = days_from_civil(t.year, t.month, t.day);
  int64_t day_of_year = days - days_from_civil(t.year, 1, 1) + 1;
  std::string_view name = part.name;
  int64_t value = 0;
  if (name == "day_of_year") value = day_of_year;
  else if (name == "week_of_year") value = (day_of_year - 1) / 7 + 1;
  else if (name == "month_of_year") value = t.month;
  else if (name == "day_of_month") value = t.day;
  else if (name == "week_of_month") value = (t.day - 1) / 7 + 1;
  else if (name == "day_of_week") value = ((days % 7 + 7 + 3) % 7) + 1;  // 1970-01-01 was a Thursday
  else if (name == "hour_of_day") value = t.hour;
  else if (name == "minute_of_hour") value = t.minute;
  return value - part.first;
}

class DatePartsStats : public FieldStats {
 public:
  void observe(const Scalar&) override {}
  void merge(const FieldStats&) override {}
};

class DatePartsField : public Field {
 public:
  DatePartsField(FieldSpec spec, Address address) : Field(std::move(spec), std::move(address)) {
    for (const auto& name : spec_.options.at("parts")) parts_.push_back(find_part(name.get<std::string>()));
    settings_.format = spec_.options.at("format").get<std::string>();
    settings_.unit_seconds = spec_.options.at("unit") == "ms" ? 1e-3 : 1.0;
    settings_.utc = spec_.options.at("utc").get<bool>();
  }
  bool uses_values() const override { return false; }
  bool uses_indices() const override { return true; }
  int64_t width() const override { return static_cast<int64_t>(parts_.size()); }
  std::unique_ptr<FieldStats> new_stats() const override { return std::make_unique<DatePartsStats>(); }
  void fit(const FieldStats&) override { mark_fitted(); }  // nothing to learn from data
  nlohmann::json state_json() const override { return nlohmann::json::object(); }
  void load_state_json(const nlohmann::json&) override { mark_fitted(); }
  const std::vector<const Part*>& parts() const { return parts_; }
  std::shared_ptr<FieldModuleImpl> make_module(const FieldModuleOptions& options) const override;

 protected:
  void encode_value(const Scalar& value, Column& column, size_t row) const override {
    CivilTime t{};
    if (!parse_time(value, settings_, t)) {
      column.state[row] = static_cast<uint8_t>(CellState::kOther);
      return;
    }
    if (settings_.utc && t.offset_minutes != 0) {
      int64_t seconds = days_from_civil(t.year, t.month, t.day) * 86400 + t.hour * 3600 + t.minute * 60 + t.second -
                        int64_t{t.offset_minutes} * 60;
      t = from_unix_seconds(seconds);
    }
    int64_t* out = column.indices.data() + row * width();
    for (size_t p = 0; p < parts_.size(); ++p) out[p] = part_class(*parts_[p], t);
    column.state[row] = static_cast<uint8_t>(CellState::kValued);
  }

 private:
  std::vector<const Part*> parts_;
  Settings settings_;
};

class DatePartsMetrics : public FieldMetrics {
 public:
  explicit DatePartsMetrics(std::vector<const Part*> parts) : parts_(std::move(parts)), correct_(parts_.size(), 0) {}
  void update(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    auto target = truth.indices.index_select(0, rows);
    int64_t offset = 0;
    for (size_t p = 0; p < parts_.size(); ++p) {
      auto logits = content.narrow(1, offset, parts_[p]->classes);
      correct_[p] += (logits.argmax(1) == target.select(1, static_cast<int64_t>(p))).sum().item<double>();
      offset += parts_[p]->classes;
    }
    n_ += static_cast<double>(rows.size(0));
  }
  std::map<std::string, double> compute() const override {
    if (n_ == 0) return {};
    std::map<std::string, double> out;
    double sum = 0;
    for (size_t p = 0; p < parts_.size(); ++p) {
      out[std::string(parts_[p]->name) + "_accuracy"] = correct_[p] / n_;
      sum += correct_[p] / n_;
    }
    out["accuracy"] = sum / static_cast<double>(parts_.size());
    return out;
  }

 private:
  std::vector<const Part*> parts_;
  std::vector<double> correct_;
  double n_ = 0;
};

class DatePartsModuleImpl : public FieldModuleImpl {
 public:
  DatePartsModuleImpl(const DatePartsField& field, const FieldModuleOptions& options)
      : FieldModuleImpl(field, options), dates_(field) {
    for (const Part* p : field.parts()) {
      embeddings_.push_back(register_module(std::string(p->name), torch::nn::Embedding(p->classes, options.d_model)));
      width_ += p->classes;
    }
    build_head(options.d_model);
  }
  int64_t content_width() const override { return width_; }
  torch::Tensor embed(const FieldTensors& cells) override {
    torch::Tensor sum;
    for (size_t p = 0; p < embeddings_.size(); ++p) {
      auto e = embeddings_[p](cells.indices.select(1, static_cast<int64_t>(p)));
      sum = sum.defined() ? sum + e : e;
    }
    return sum;
  }
  torch::Tensor content_loss(const torch::Tensor& content, const FieldTensors& truth, const torch::Tensor& rows) override {
    auto target = truth.indices.index_select(0, rows);
    torch::Tensor total;
    int64_t offset = 0;
    const auto& parts = dates_.parts();
    for (size_t p = 0; p < parts.size(); ++p) {
      auto loss = torch::nn::functional::cross_entropy(
          content.narrow(1, offset, parts[p]->classes), target.select(1, static_cast<int64_t>(p)),
          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
      total = total.defined() ? total + loss : loss;
      offset += parts[p]->classes;
    }
    return total / static_cast<double>(parts.size());
  }
  std::unique_ptr<FieldMetrics> new_metrics() const override { return std::make_unique<DatePartsMetrics>(dates_.parts()); }
  ValueType content_type() const override {
    std::vector<std::pair<std::string, ValueType>> parts;
    for (const Part* part : dates_.parts())
      parts.emplace_back(part->name, ValueType::structure({{"value", ValueType::int32()}, {"probability", ValueType::float64()}}));
    return ValueType::structure(std::move(parts));
  }
  nlohmann::json content_payload(const float* logits) const override {
    nlohmann::json out = nlohmann::json::object();
    for (const Part* part : dates_.parts()) {
      int64_t best = 0;
      double max_logit = logits[0], total = 0;
      for (int64_t k = 1; k < part->classes; ++k)
        if (logits[k] > max_logit) max_logit = logits[best = k];
      for (int64_t k = 0; k < part->classes; ++k) total += std::exp(logits[k] - max_logit);
      out[part->name] = {{"value", best + part->first}, {"probability", 1.0 / total}};
      logits += part->classes;
    }
    return out;
  }

 private:
  const DatePartsField& dates_;
  std::vector<torch::nn::Embedding> embeddings_;
  int64_t width_ = 0;
};

std::shared_ptr<FieldModuleImpl> DatePartsField::make_module(const FieldModuleOptions& options) const {
  return std::make_shared<DatePartsModuleImpl>(*this, options);
}

}  // namespace

Datatype dateparts_datatype() {
  return datatype_of<DatePartsField>(
      "dateparts",
      "a timestamp (ISO-8601 string, strptime `format`, or Unix time) seen through its calendar parts",
      {{"parts", {"month_of_year", "day_of_month", "day_of_week", "hour_of_day"}}, {"format", ""}, {"unit", "s"}, {"utc", false}},
      [](const FieldSpec& spec) {
        std::vector<std::string> names;
        for (const auto& p : kParts) names.push_back(p.name);
        const auto& parts = spec.options.at("parts");
        if (!parts.is_array() || parts.empty())
          options::fail(spec, "parts", fmt::format("must be a non-empty list of: {}", fmt::join(names, ", ")));
        std::set<std::string> seen;
        for (const auto& p : parts) {
          if (!p.is_string() || !find_part(p.get<std::string>()))
            throw SchemaError(fmt::format("field '{}': unknown date part {} (allowed: {})", spec.name, p.dump(),
                                          fmt::join(names, ", ")));
          if (!seen.insert(p.get<std::string>()).second)
            throw SchemaError(fmt::format("field '{}': date part {} is listed twice in 'parts'", spec.name, p.dump()));
        }
        if (!spec.options.at("format").is_string()) options::fail(spec, "format", "must be a strptime pattern string");
        options::one_of(spec, "unit", {"s", "ms"});
        options::boolean(spec, "utc");
      });
}

}  // namespace j2v
