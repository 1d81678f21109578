#include "client/data/csv_reader.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "client/data/gz_reader.h"
#include "common/quote.h"
#include "common/status.h"

namespace shoal::client {
namespace {

// How many column names an error message lists before "... and N more".
constexpr size_t kMaxNamesInMessage = 20;
// Class labels above this cannot be held exactly by the double a cell like
// "3.0" is parsed into.
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

// Which of the two files of CsvOptions a table comes from.
enum class FileKind {
  kInputsAndTargets,  // the only file: features and targets
  kInputsOnly,        // the first file when targets_path is set
  kTargetsOnly,       // targets_path
};

enum class Role { kFeature, kTarget, kIgnored };

// What a file yields, row-major. Only the vectors its kind fills are used.
struct Table {
  int64_t rows = 0;
  int64_t num_features = 0;
  std::vector<float> features;
  std::vector<float> float_targets;
  std::vector<int64_t> class_targets;
};

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// LineReader reads the lines of a file, LF or CRLF, counting from 1, a
// block at a time: only the current line (and one block) is in memory.
class LineReader {
 public:
  LineReader(GzReader& reader, const std::string& path, const CsvOptions& options)
      : reader_(reader), path_(path), options_(options) {}

  // Next sets `line` (without its line ending; valid until the next call)
  // and returns true, or returns false at the end of the file.
  // Errors: the reader's; InvalidArgument for a line longer than
  // max_line_bytes; ResourceExhausted past max_file_bytes.
  absl::StatusOr<bool> Next(absl::string_view* line) {
    if (unread_) {
      unread_ = false;
      *line = last_;
      return true;
    }
    size_t end;
    while ((end = buffer_.find('\n', scan_)) == std::string::npos) {
      if (buffer_.size() - start_ > static_cast<size_t>(options_.max_line_bytes) + 1) {
        return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_number_ + 1,
                                                       ": longer than the limit of ",
                                                       options_.max_line_bytes, " bytes"));
      }
      if (eof_) break;
      SHOAL_RETURN_IF_ERROR(Fill());
    }
    if (start_ == buffer_.size()) return false;
    if (end == std::string::npos) end = buffer_.size();
    last_ = absl::string_view(buffer_).substr(start_, end - start_);
    if (!last_.empty() && last_.back() == '\r') last_.remove_suffix(1);
    start_ = scan_ = std::min(end + 1, buffer_.size());
    ++line_number_;
    *line = last_;
    return true;
  }

  // Unread makes the next Next return the line the last one returned.
  void Unread() { unread_ = true; }

  int64_t line_number() const { return line_number_; }

 private:
  static constexpr size_t kBlock = size_t{1} << 20;

  // Fill drops the lines already returned and reads one more block.
  absl::Status Fill() {
    buffer_.erase(0, start_);
    scan_ = buffer_.size();
    start_ = 0;
    const size_t old = buffer_.size();
    buffer_.resize(old + kBlock);
    SHOAL_ASSIGN_OR_RETURN(const int64_t got,
                           reader_.Read(kBlock, reinterpret_cast<uint8_t*>(&buffer_[old])));
    buffer_.resize(old + static_cast<size_t>(got));
    total_ += static_cast<uint64_t>(got);
    if (total_ > options_.max_file_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(path_, ": holds more than the limit of ",
                                                       options_.max_file_bytes,
                                                       " bytes (decompressed)"));
    }
    if (got < static_cast<int64_t>(kBlock)) eof_ = true;
    if (first_block_) {
      first_block_ = false;
      if (absl::StartsWith(buffer_, "\xEF\xBB\xBF")) {
        buffer_.erase(0, 3);
        scan_ = 0;
      }
    }
    return absl::OkStatus();
  }

  GzReader& reader_;
  const std::string& path_;
  const CsvOptions& options_;
  std::string buffer_;
  size_t start_ = 0;  // where the next line starts
  size_t scan_ = 0;   // where to look for its end
  bool eof_ = false;
  bool first_block_ = true;
  bool unread_ = false;
  absl::string_view last_;
  uint64_t total_ = 0;
  int64_t line_number_ = 0;
};

bool IsBlankLine(absl::string_view line) { return std::all_of(line.begin(), line.end(), IsBlank); }

// SplitCells splits `line` into `cells`. Unquoted cells point into `line`;
// quoted ones, unescaped, into `scratch`, which is reserved up front so it
// never moves. With delimiter ' ', runs of blanks separate cells and blanks
// at either end are dropped; otherwise blanks around a quoted cell are.
absl::Status SplitCells(absl::string_view line, char delimiter,
                        std::vector<absl::string_view>* cells, std::string* scratch) {
  cells->clear();
  scratch->clear();
  scratch->reserve(line.size());
  const bool blanks = delimiter == ' ';
  auto is_separator = [&](char c) { return blanks ? IsBlank(c) : c == delimiter; };
  auto is_padding = [&](char c) { return IsBlank(c) && !is_separator(c); };
  size_t i = 0;
  if (blanks) {
    while (i < line.size() && IsBlank(line[i])) ++i;
    if (i == line.size()) return absl::OkStatus();
  }
  while (true) {
    const size_t start = i;
    while (i < line.size() && is_padding(line[i])) ++i;
    if (i < line.size() && line[i] == '"') {
      const size_t from = scratch->size();
      for (++i;; ++i) {
        if (i == line.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat("cell ", cells->size() + 1,
                           ": a quote is not closed on its line (quoted cells that span "
                           "lines are not supported)"));
        }
        if (line[i] != '"') {
          scratch->push_back(line[i]);
        } else if (i + 1 < line.size() && line[i + 1] == '"') {
          scratch->push_back('"');
          ++i;
        } else {
          ++i;
          break;
        }
      }
      cells->push_back(absl::string_view(*scratch).substr(from));
      while (i < line.size() && is_padding(line[i])) ++i;
      if (i < line.size() && !is_separator(line[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("cell ", cells->size(), ": text after the closing quote"));
      }
    } else {
      i = start;
      while (i < line.size() && !is_separator(line[i])) ++i;
      cells->push_back(line.substr(start, i - start));
    }
    if (i == line.size()) break;
    if (blanks) {
      while (i < line.size() && IsBlank(line[i])) ++i;
      if (i == line.size()) break;
    } else {
      ++i;  // the delimiter; a cell (perhaps empty) follows
    }
  }
  return absl::OkStatus();
}

std::string ListNames(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < kMaxNamesInMessage; ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", QuoteForMessage(names[i]));
  }
  if (names.size() > kMaxNamesInMessage) {
    absl::StrAppend(&out, " ... and ", names.size() - kMaxNamesInMessage, " more");
  }
  return out;
}

absl::Status ValidateOptions(const CsvOptions& options) {
  if (options.target_columns.empty()) {
    return absl::InvalidArgumentError("CSV: no target column named");
  }
  if (options.targets == TargetType::kClassIndex && options.target_columns.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("CSV: class-index targets come from exactly one column, ",
                     options.target_columns.size(), " named"));
  }
  if (options.num_classes < 0 || options.skip_lines < 0 || options.max_columns < 1 ||
      options.max_line_bytes < 1) {
    return absl::InvalidArgumentError(
        "CSV: num_classes and skip_lines must be >= 0, max_columns and "
        "max_line_bytes >= 1");
  }
  if (options.delimiter == '"' || options.delimiter == '\n' || options.delimiter == '\r' ||
      options.delimiter == '\0') {
    return absl::InvalidArgumentError(
        absl::StrCat("CSV: delimiter ", QuoteForMessage(std::string(1, options.delimiter)),
                     " cannot separate cells"));
  }
  if (options.header && !options.column_names.empty()) {
    return absl::InvalidArgumentError(
        "CSV: column_names names the columns of a file without a header row; "
        "set header = false to use them");
  }
  absl::flat_hash_set<std::string> seen;
  for (const std::string& name : options.target_columns) {
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("CSV: target column ", QuoteForMessage(name), " named twice"));
    }
  }
  for (const std::string& name : options.ignore_columns) {
    if (seen.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("CSV: column ", QuoteForMessage(name), " is both a target and ignored"));
    }
  }
  return absl::OkStatus();
}

// CsvTableReader reads one file of a ReadCsv call into a Table.
class CsvTableReader {
 public:
  CsvTableReader(const std::string& path, const CsvOptions& options, FileKind kind)
      : path_(path), options_(options), kind_(kind) {}

  // Read reads the file, handing its rows to `flush` `chunk_rows` at a time
  // (the last chunk may hold fewer), and returns how many rows it read.
  absl::StatusOr<int64_t> Read(int64_t chunk_rows,
                               const std::function<absl::Status(Table&)>& flush) {
    GzReader reader;
    SHOAL_RETURN_IF_ERROR(reader.Open(path_));
    LineReader lines(reader, path_, options_);
    absl::string_view line;
    for (int i = 0; i < options_.skip_lines; ++i) {
      SHOAL_ASSIGN_OR_RETURN(const bool more, lines.Next(&line));
      if (!more) {
        return absl::InvalidArgumentError(absl::StrCat(path_, ": empty: the file ends within the ",
                                                       options_.skip_lines, " line(s) to skip"));
      }
    }
    SHOAL_RETURN_IF_ERROR(ReadNames(lines));
    SHOAL_RETURN_IF_ERROR(AssignRoles());
    return ReadRows(lines, chunk_rows, flush);
  }

 private:
  absl::Status LineError(int64_t line_number, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_number, ": ", what));
  }

  absl::Status CellError(int64_t line_number, size_t column, absl::string_view what) const {
    return LineError(line_number,
                     absl::StrCat("column ", QuoteForMessage(names_[column]), ": ", what));
  }

  // Split splits one line, checking the limits first.
  absl::Status Split(absl::string_view line, int64_t line_number) {
    if (static_cast<int64_t>(line.size()) > options_.max_line_bytes) {
      return LineError(line_number, absl::StrCat("longer than the limit of ",
                                                 options_.max_line_bytes, " bytes"));
    }
    absl::Status split = SplitCells(line, options_.delimiter, &cells_, &scratch_);
    if (!split.ok()) return LineError(line_number, split.message());
    if (static_cast<int64_t>(cells_.size()) > options_.max_columns) {
      return LineError(line_number, absl::StrCat(cells_.size(), " columns, more than the limit of ",
                                                 options_.max_columns));
    }
    return absl::OkStatus();
  }

  // ReadNames names the columns: from the header row, or from the options
  // (or positions) for a file without one.
  absl::Status ReadNames(LineReader& lines) {
    if (options_.header) {
      absl::string_view line;
      SHOAL_ASSIGN_OR_RETURN(const bool more, lines.Next(&line));
      if (!more || IsBlankLine(line)) {
        return absl::InvalidArgumentError(absl::StrCat(
            path_, ": empty: no header row",
            lines.line_number() > 0 ? absl::StrCat(" at line ", lines.line_number()) : ""));
      }
      SHOAL_RETURN_IF_ERROR(Split(line, lines.line_number()));
      for (absl::string_view cell : cells_) {
        names_.emplace_back(absl::StripAsciiWhitespace(cell));
      }
      absl::flat_hash_set<absl::string_view> seen;
      for (const std::string& name : names_) {
        if (!seen.insert(name).second) {
          return LineError(lines.line_number(),
                           absl::StrCat("column name ", QuoteForMessage(name), " appears twice"));
        }
      }
      return absl::OkStatus();
    }
    if (kind_ == FileKind::kTargetsOnly) {
      names_ = options_.target_columns;
    } else if (!options_.column_names.empty()) {
      names_ = options_.column_names;
      absl::flat_hash_set<absl::string_view> seen;
      for (const std::string& name : names_) {
        if (!seen.insert(name).second) {
          return absl::InvalidArgumentError(
              absl::StrCat("CSV: column_names names ", QuoteForMessage(name), " twice"));
        }
      }
    } else {
      // Positional names: as many as the first row has cells.
      absl::string_view line;
      SHOAL_ASSIGN_OR_RETURN(const bool more, lines.Next(&line));
      if (!more || IsBlankLine(line)) {
        return absl::InvalidArgumentError(absl::StrCat(path_, ": empty: no rows"));
      }
      SHOAL_RETURN_IF_ERROR(Split(line, lines.line_number()));
      for (size_t i = 1; i <= cells_.size(); ++i) {
        names_.push_back(absl::StrCat(i));
      }
      lines.Unread();
    }
    return absl::OkStatus();
  }

  absl::Status MissingColumn(const std::string& name, const char* role) const {
    return absl::NotFoundError(absl::StrCat(path_, ": no ", role, " column ", QuoteForMessage(name),
                                            "; the ", names_.size(), " column(s) found are ",
                                            ListNames(names_)));
  }

  absl::Status AssignRoles() {
    absl::flat_hash_map<absl::string_view, size_t> index;
    for (size_t i = 0; i < names_.size(); ++i) index[names_[i]] = i;
    roles_.assign(names_.size(), Role::kFeature);
    for (const std::string& name : options_.ignore_columns) {
      auto it = index.find(name);
      // A column may be ignored in either file of a pair.
      if (it != index.end()) {
        roles_[it->second] = Role::kIgnored;
      } else if (kind_ == FileKind::kInputsAndTargets) {
        return MissingColumn(name, "ignored");
      }
    }
    target_columns_.clear();
    for (const std::string& name : options_.target_columns) {
      auto it = index.find(name);
      if (kind_ == FileKind::kInputsOnly) {
        if (it != index.end() && options_.header && roles_[it->second] != Role::kIgnored) {
          return absl::InvalidArgumentError(
              absl::StrCat(path_, ": column ", QuoteForMessage(name),
                           " is named as a target, but the targets come from ",
                           options_.targets_path, "; ignore it here or rename it"));
        }
        continue;
      }
      if (it == index.end()) return MissingColumn(name, "target");
      roles_[it->second] = Role::kTarget;
      target_columns_.push_back(it->second);
    }
    num_features_ = 0;
    for (size_t i = 0; i < names_.size(); ++i) {
      if (kind_ == FileKind::kTargetsOnly && roles_[i] == Role::kFeature) {
        return absl::InvalidArgumentError(
            absl::StrCat(path_, ": column ", QuoteForMessage(names_[i]),
                         " of the targets file is neither a target nor ignored"));
      }
      if (roles_[i] == Role::kFeature) ++num_features_;
    }
    if (kind_ != FileKind::kTargetsOnly && num_features_ == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_,
                       ": no feature columns: every column is a target "
                       "or ignored"));
    }
    return absl::OkStatus();
  }

  absl::Status ParseFloat(absl::string_view cell, int64_t line_number, size_t column,
                          float* out) const {
    if (absl::StripAsciiWhitespace(cell).empty()) {
      return CellError(line_number, column,
                       "empty cell (missing values are not supported: fill or "
                       "drop them first)");
    }
    if (!absl::SimpleAtof(cell, out)) {
      return CellError(line_number, column,
                       absl::StrCat(QuoteForMessage(cell), " is not a number"));
    }
    if (!std::isfinite(*out)) {
      return CellError(line_number, column,
                       absl::StrCat(QuoteForMessage(cell),
                                    " is not a finite float32 (NaN and infinities are "
                                    "refused: fill or drop missing values first)"));
    }
    return absl::OkStatus();
  }

  absl::Status ParseClassIndex(absl::string_view cell, int64_t line_number, size_t column,
                               int64_t* out) const {
    cell = absl::StripAsciiWhitespace(cell);
    double value = 0;
    bool ok = absl::SimpleAtoi(cell, out);
    if (!ok && absl::SimpleAtod(cell, &value) && value >= 0 && value < kMaxExactInteger &&
        value == std::floor(value)) {
      *out = static_cast<int64_t>(value);
      ok = true;
    }
    if (!ok || *out < 0) {
      return CellError(
          line_number, column,
          absl::StrCat("class label ", QuoteForMessage(cell), " is not a non-negative integer"));
    }
    if (options_.num_classes > 0 && *out >= options_.num_classes) {
      return CellError(line_number, column,
                       absl::StrCat("class label ", *out, " is not below ", options_.num_classes,
                                    " (num_classes)"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> ReadRows(LineReader& lines, int64_t chunk_rows,
                                   const std::function<absl::Status(Table&)>& flush) {
    Table table;
    table.num_features = num_features_;
    int64_t rows = 0;
    absl::string_view line;
    int64_t blank_line = 0;  // the first blank line seen, if any
    while (true) {
      SHOAL_ASSIGN_OR_RETURN(const bool more, lines.Next(&line));
      if (!more) break;
      const int64_t n = lines.line_number();
      if (IsBlankLine(line)) {
        if (blank_line == 0) blank_line = n;
        continue;
      }
      if (blank_line != 0) {
        return LineError(blank_line, "blank line between rows");
      }
      SHOAL_RETURN_IF_ERROR(Split(line, n));
      if (cells_.size() != names_.size()) {
        return LineError(n, absl::StrCat(cells_.size(), " cells, but ",
                                         options_.header ? "the header names " : "expected ",
                                         names_.size(), " columns"));
      }
      for (size_t c = 0; c < cells_.size(); ++c) {
        if (roles_[c] != Role::kFeature) continue;
        float value = 0;
        SHOAL_RETURN_IF_ERROR(ParseFloat(cells_[c], n, c, &value));
        table.features.push_back(value);
      }
      for (size_t c : target_columns_) {
        if (options_.targets == TargetType::kClassIndex) {
          int64_t label = 0;
          SHOAL_RETURN_IF_ERROR(ParseClassIndex(cells_[c], n, c, &label));
          table.class_targets.push_back(label);
        } else {
          float value = 0;
          SHOAL_RETURN_IF_ERROR(ParseFloat(cells_[c], n, c, &value));
          table.float_targets.push_back(value);
        }
      }
      ++table.rows;
      ++rows;
      if (table.rows == chunk_rows) {
        SHOAL_RETURN_IF_ERROR(flush(table));
        table = Table{};
        table.num_features = num_features_;
      }
    }
    if (rows == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, options_.header ? ": a header but no rows" : ": empty: no rows"));
    }
    if (table.rows > 0) SHOAL_RETURN_IF_ERROR(flush(table));
    return rows;
  }

  const std::string& path_;
  const CsvOptions& options_;
  const FileKind kind_;
  std::vector<std::string> names_;
  std::vector<Role> roles_;
  std::vector<size_t> target_columns_;  // in options_.target_columns order
  int64_t num_features_ = 0;
  std::vector<absl::string_view> cells_;
  std::string scratch_;
};

template <typename T>
at::Tensor ToTensor(const std::vector<T>& values, std::vector<int64_t> sizes,
                    at::ScalarType dtype) {
  at::Tensor tensor = at::empty(sizes, at::dtype(dtype));
  std::memcpy(tensor.data_ptr(), values.data(), values.size() * sizeof(T));
  return tensor;
}

// ToDataset turns a table's rows into tensors.
Dataset ToDataset(const Table& table, const CsvOptions& options) {
  const int64_t k = static_cast<int64_t>(options.target_columns.size());
  Dataset data;
  data.inputs = ToTensor(table.features, {table.rows, table.num_features}, at::kFloat);
  if (options.targets == TargetType::kClassIndex) {
    data.targets = ToTensor(table.class_targets, {table.rows}, at::kLong);
  } else if (k == 1) {
    data.targets = ToTensor(table.float_targets, {table.rows}, at::kFloat);
  } else {
    data.targets = ToTensor(table.float_targets, {table.rows, k}, at::kFloat);
  }
  return data;
}

// ReadTables reads `path` (and options.targets_path), handing `fn` tables
// of at most `chunk_rows` rows with their features and targets.
absl::Status ReadTables(const std::string& path, const CsvOptions& options, int64_t chunk_rows,
                        const std::function<absl::Status(Table&)>& fn) {
  SHOAL_RETURN_IF_ERROR(ValidateOptions(options));
  if (options.targets_path.empty()) {
    return CsvTableReader(path, options, FileKind::kInputsAndTargets)
        .Read(chunk_rows, fn)
        .status();
  }
  // The targets (small) whole first, then the features a chunk at a time.
  Table targets;
  SHOAL_ASSIGN_OR_RETURN(
      const int64_t target_rows,
      CsvTableReader(options.targets_path, options, FileKind::kTargetsOnly)
          .Read(std::numeric_limits<int64_t>::max(), [&](Table& t) {
            targets = std::move(t);
            return absl::OkStatus();
          }));
  const int64_t k = static_cast<int64_t>(options.target_columns.size());
  int64_t done = 0;
  SHOAL_ASSIGN_OR_RETURN(
      const int64_t rows,
      CsvTableReader(path, options, FileKind::kInputsOnly)
          .Read(chunk_rows, [&](Table& t) -> absl::Status {
            const int64_t begin = done;
            done += t.rows;
            // Past the targets' rows: counted, then refused below.
            if (done > target_rows) return absl::OkStatus();
            if (options.targets == TargetType::kClassIndex) {
              t.class_targets.assign(targets.class_targets.begin() + begin,
                                     targets.class_targets.begin() + done);
            } else {
              t.float_targets.assign(targets.float_targets.begin() + begin * k,
                                     targets.float_targets.begin() + done * k);
            }
            return fn(t);
          }));
  if (rows != target_rows) {
    return absl::InvalidArgumentError(absl::StrCat(path, " holds ", rows, " rows but ",
                                                   options.targets_path, " holds ",
                                                   target_rows));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Dataset> ReadCsv(const std::string& path, const CsvOptions& options) {
  Table table;
  SHOAL_RETURN_IF_ERROR(ReadTables(path, options, std::numeric_limits<int64_t>::max(),
                                   [&](Table& t) {
                                     table = std::move(t);
                                     return absl::OkStatus();
                                   }));
  try {
    return ToDataset(table, options);
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": cannot hold the data: ", e.what_without_backtrace()));
  }
}

absl::Status ReadCsvChunks(const std::string& path, const CsvOptions& options,
                           int64_t chunk_rows, const ChunkFn& fn) {
  if (chunk_rows < 1) return absl::InvalidArgumentError("chunk_rows must be >= 1");
  return ReadTables(path, options, chunk_rows,
                    [&](Table& t) { return fn(ToDataset(t, options)); });
}

}  // namespace shoal::client
