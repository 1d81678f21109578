// PartitionSummaryBuilder, Summarize and FormatLabelTable (declared in
// partition.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/data/partition.h"

namespace shoal::client {
namespace {

int64_t Total(const std::vector<int64_t>& counts) {
  return std::accumulate(counts.begin(), counts.end(), int64_t{0});
}

int Digits(int64_t value) {
  return static_cast<int>(absl::StrCat(value).size());
}

}  // namespace

PartitionSummaryBuilder::PartitionSummaryBuilder(
    const std::vector<int64_t>& reference_counts) {
  const int64_t total = Total(reference_counts);
  if (total <= 0) return;
  reference_.reserve(reference_counts.size());
  for (int64_t count : reference_counts) {
    reference_.push_back(static_cast<double>(count) /
                         static_cast<double>(total));
  }
}

void PartitionSummaryBuilder::Add(const std::vector<int64_t>& histogram) {
  const int64_t size = Total(histogram);
  ++clients_;
  min_size_ = clients_ == 1 ? size : std::min(min_size_, size);
  max_size_ = clients_ == 1 ? size : std::max(max_size_, size);
  const double delta = static_cast<double>(size) - mean_size_;
  mean_size_ += delta / static_cast<double>(clients_);
  m2_size_ += delta * (static_cast<double>(size) - mean_size_);
  classes_total_ += std::count_if(histogram.begin(), histogram.end(),
                                  [](int64_t count) { return count > 0; });
  // A client without examples has no label distribution to compare.
  if (size == 0 || reference_.empty()) return;
  ++nonempty_clients_;
  double distance = 0.0;
  const size_t classes = std::max(histogram.size(), reference_.size());
  for (size_t c = 0; c < classes; ++c) {
    const double mine =
        c < histogram.size()
            ? static_cast<double>(histogram[c]) / static_cast<double>(size)
            : 0.0;
    const double pooled = c < reference_.size() ? reference_[c] : 0.0;
    distance += std::abs(mine - pooled);
  }
  tv_total_ += distance / 2.0;
}

PartitionSummary PartitionSummaryBuilder::Finish() const {
  PartitionSummary summary;
  summary.clients = clients_;
  if (clients_ == 0) return summary;
  const auto clients = static_cast<double>(clients_);
  summary.min_size = min_size_;
  summary.max_size = max_size_;
  summary.mean_size = mean_size_;
  summary.stddev_size = std::sqrt(m2_size_ / clients);
  summary.mean_classes = static_cast<double>(classes_total_) / clients;
  if (nonempty_clients_ > 0) {
    summary.mean_tv_distance =
        tv_total_ / static_cast<double>(nonempty_clients_);
  }
  return summary;
}

PartitionSummary Summarize(
    const std::vector<std::vector<int64_t>>& histograms) {
  std::vector<int64_t> pooled;
  for (const auto& histogram : histograms) {
    if (histogram.size() > pooled.size()) pooled.resize(histogram.size(), 0);
    for (size_t c = 0; c < histogram.size(); ++c) pooled[c] += histogram[c];
  }
  PartitionSummaryBuilder builder(pooled);
  for (const auto& histogram : histograms) builder.Add(histogram);
  return builder.Finish();
}

std::string FormatLabelTable(
    const std::vector<std::vector<int64_t>>& histograms, size_t max_rows) {
  const size_t rows = std::min(histograms.size(), max_rows);
  size_t classes = 0;
  int size_width = 4;  // "size"
  int count_width = 1;
  for (size_t r = 0; r < rows; ++r) {
    classes = std::max(classes, histograms[r].size());
    size_width = std::max(size_width, Digits(Total(histograms[r])));
    for (int64_t count : histograms[r]) {
      count_width = std::max(count_width, Digits(count));
    }
  }
  if (classes > 0) {
    count_width =
        std::max(count_width, Digits(static_cast<int64_t>(classes) - 1));
  }
  const int client_width =
      rows == 0 ? 6 : std::max(6, Digits(static_cast<int64_t>(rows) - 1));

  std::string table =
      absl::StrFormat("%*s %*s", client_width, "client", size_width, "size");
  for (size_t c = 0; c < classes; ++c) {
    absl::StrAppendFormat(&table, " %*d", count_width, c);
  }
  table += '\n';
  for (size_t r = 0; r < rows; ++r) {
    const std::vector<int64_t>& histogram = histograms[r];
    absl::StrAppendFormat(&table, "%*d %*d", client_width, r, size_width,
                          Total(histogram));
    for (size_t c = 0; c < classes; ++c) {
      absl::StrAppendFormat(&table, " %*d", count_width,
                            c < histogram.size() ? histogram[c] : 0);
    }
    table += '\n';
  }
  if (histograms.size() > rows) {
    absl::StrAppendFormat(&table, "... %d more\n", histograms.size() - rows);
  }
  return table;
}

}  // namespace shoal::client
