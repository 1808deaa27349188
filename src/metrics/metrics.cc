#include "kvbm/metrics/metrics.h"

#include <absl/strings/str_cat.h>

#include <charconv>
#include <cmath>

namespace kvbm::metrics {
namespace {

bool name_char(char c, bool first) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
  return first ? alpha : alpha || (c >= '0' && c <= '9');
}

// `{a="x",b="y"}` plus an optional trailing le label; empty when there are no labels.
std::string label_text(const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) return "";
  std::string out = "{";
  for (const Label& l : labels) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(&out, sanitize_name(l.name), "=\"", escape_label_value(l.value), "\"");
  }
  if (le != nullptr) absl::StrAppend(&out, out.size() > 1 ? "," : "", "le=\"", *le, "\"");
  out += '}';
  return out;
}

const char* type_name(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

bool valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0)) return false;
  }
  return true;
}

std::string sanitize_name(std::string_view name) {
  if (name.empty()) return "_";
  std::string out(name);
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!name_char(out[i], i == 0)) out[i] = '_';
  }
  return out;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return absl::StrCat(v);
  return std::string(buf, end);
}

// ---- Histogram ----

Histogram::Histogram(std::vector<double> bounds) {
  std::erase_if(bounds, [](double b) { return !std::isfinite(b); });
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  bounds_ = std::move(bounds);
  buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = total;
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  std::vector<double> out;
  out.reserve(count);
  double b = start;
  for (std::size_t i = 0; i < count; ++i, b *= factor) out.push_back(b);
  return out;
}

std::vector<double> latency_buckets_seconds() {
  return {1e-5,   2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
          2.5e-2, 5e-2,   0.1,  0.25, 0.5,    1.0,  2.5,  5.0,    10.0};
}

// ---- Exposition ----

Exposition::Family* Exposition::family(std::string_view name, std::string_view help, MetricType type) {
  const std::string clean = sanitize_name(name);
  for (Family& f : families_) {
    if (f.name == clean) return f.type == type ? &f : nullptr;  // one name, one type: drop the conflicting one
  }
  families_.push_back(Family{clean, std::string(help), type, ""});
  return &families_.back();
}

void Exposition::counter(std::string_view name, std::string_view help, const Labels& labels, double value) {
  Family* f = family(name, help, MetricType::kCounter);
  if (f == nullptr) return;
  absl::StrAppend(&f->samples, f->name, label_text(labels), " ", format_value(value), "\n");
}

void Exposition::gauge(std::string_view name, std::string_view help, const Labels& labels, double value) {
  Family* f = family(name, help, MetricType::kGauge);
  if (f == nullptr) return;
  absl::StrAppend(&f->samples, f->name, label_text(labels), " ", format_value(value), "\n");
}

void Exposition::histogram(std::string_view name, std::string_view help, const Labels& labels,
                           const HistogramSnapshot& h) {
  Family* f = family(name, help, MetricType::kHistogram);
  if (f == nullptr) return;
  for (std::size_t i = 0; i < h.cumulative.size(); ++i) {
    const std::string le = i < h.bounds.size() ? format_value(h.bounds[i]) : "+Inf";
    absl::StrAppend(&f->samples, f->name, "_bucket", label_text(labels, &le), " ", h.cumulative[i], "\n");
  }
  absl::StrAppend(&f->samples, f->name, "_sum", label_text(labels), " ", format_value(h.sum), "\n");
  absl::StrAppend(&f->samples, f->name, "_count", label_text(labels), " ", h.count, "\n");
}

std::string Exposition::text() const {
  std::string out;
  for (const Family& f : families_) {
    absl::StrAppend(&out, "# HELP ", f.name, " ", escape_help(f.help), "\n# TYPE ", f.name, " ", type_name(f.type),
                    "\n", f.samples);
  }
  return out;
}

// ---- Registry ----

Registry::Owned& Registry::find_or_add(std::string_view name, std::string_view help, Labels labels, MetricType type) {
  for (auto& o : owned_) {
    if (o->name == name && o->labels == labels && o->type == type) return *o;
  }
  auto o = std::make_unique<Owned>();
  o->name = std::string(name);
  o->help = std::string(help);
  o->labels = std::move(labels);
  o->type = type;
  owned_.push_back(std::move(o));
  return *owned_.back();
}

Counter& Registry::counter(std::string_view name, std::string_view help, Labels labels) {
  MutexLock lock(&mu_);
  Owned& o = find_or_add(name, help, std::move(labels), MetricType::kCounter);
  if (!o.counter) o.counter = std::make_unique<Counter>();
  return *o.counter;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, Labels labels) {
  MutexLock lock(&mu_);
  Owned& o = find_or_add(name, help, std::move(labels), MetricType::kGauge);
  if (!o.gauge) o.gauge = std::make_unique<Gauge>();
  return *o.gauge;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                               Labels labels) {
  MutexLock lock(&mu_);
  Owned& o = find_or_add(name, help, std::move(labels), MetricType::kHistogram);
  if (!o.histogram) o.histogram = std::make_unique<Histogram>(std::move(bounds));
  return *o.histogram;
}

Registry::CollectorId Registry::add_collector(Collector collector) {
  MutexLock lock(&mu_);
  const CollectorId id = next_id_++;
  collectors_.emplace_back(id, std::move(collector));
  return id;
}

void Registry::remove_collector(CollectorId id) {
  MutexLock lock(&mu_);  // render() holds it while collectors run
  std::erase_if(collectors_, [id](const auto& c) { return c.first == id; });
}

std::string Registry::render() const {
  Exposition e;
  MutexLock lock(&mu_);
  for (const auto& o : owned_) {
    switch (o->type) {
      case MetricType::kCounter:
        e.counter(o->name, o->help, o->labels, static_cast<double>(o->counter->value()));
        break;
      case MetricType::kGauge:
        e.gauge(o->name, o->help, o->labels, o->gauge->value());
        break;
      case MetricType::kHistogram:
        e.histogram(o->name, o->help, o->labels, o->histogram->snapshot());
        break;
    }
  }
  for (const auto& [id, collector] : collectors_) collector(e);
  return e.text();
}

}  // namespace kvbm::metrics
