// ReadCsv: numeric tables in delimited text files (CSV, plain or gzipped)
// read into a Dataset.
#ifndef SHOAL_CLIENT_DATA_CSV_READER_H_
#define SHOAL_CLIENT_DATA_CSV_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/data/dataset.h"

namespace shoal::client {

// TargetType says what the target columns hold and so the targets' dtype.
enum class TargetType {
  // One column of non-negative integers (class indices) -> int64 [N].
  // "3" and "3.0" are both class 3; "3.5", "-1" and "1e30" are refused.
  kClassIndex,
  // One or more columns of numbers -> float32 [N] for one column, [N, K]
  // for K columns (regression, binary and multi-label targets).
  kFloat,
};

// CsvOptions says how to read a file: which columns are targets, which to
// leave out, and how the text is laid out. Every column that is neither a
// target nor ignored is a numeric feature.
struct CsvOptions {
  // Names of the target columns, in the order they go into the targets.
  // Required: at least one; exactly one for kClassIndex.
  std::vector<std::string> target_columns;
  // Columns that are neither features nor targets (IDs, free text): their
  // cells are not parsed at all. Each must exist.
  std::vector<std::string> ignore_columns;
  // What the target columns hold. Default: class indices.
  TargetType targets = TargetType::kClassIndex;
  // For kClassIndex, when > 0: every label must be below it. Default 0: no
  // upper bound is checked.
  int64_t num_classes = 0;

  // Lines to skip before the header row (or before the first row when
  // there is no header), e.g. a title or sklearn's count line. Default 0.
  int skip_lines = 0;
  // Whether the first line (after skip_lines) names the columns. Default
  // true. When false, the columns are named by `column_names` if given,
  // else by their 1-based position: "1", "2", ...
  bool header = true;
  // Names of the columns of a file without a header row; set header =
  // false to use them. Empty by default.
  std::vector<std::string> column_names;
  // The character between cells. Default ','. A space (' ') means any run
  // of spaces and tabs, with blanks at either end of a line ignored (the
  // layout numpy.savetxt writes).
  char delimiter = ',';

  // When non-empty: the targets are in this second file, row by row, and
  // the first file holds no targets (every column not ignored is a
  // feature). The second file is read with the same skip_lines, header and
  // delimiter; with a header its columns are picked by target_columns (any
  // other column must be ignored), without one its columns are named by
  // target_columns in order. Both files must hold the same number of rows.
  std::string targets_path;

  // Limits, checked before the work they bound.
  // Most bytes a file may hold, decompressed. Default 1 GiB.
  uint64_t max_file_bytes = uint64_t{1} << 30;
  // Most columns a file may have. Default 100,000.
  int64_t max_columns = 100'000;
  // Longest line, in bytes. Default 16 MiB.
  int64_t max_line_bytes = int64_t{1} << 24;
};

// ReadCsv reads a delimited text file (gzipped or not: detected by content)
// into `inputs` float32 [N, F], the feature columns in file order, and
// `targets` as `options.targets` says. Lines end in LF or CRLF; blank lines
// at the end are ignored; a UTF-8 byte order mark is skipped. Cells may be
// quoted with double quotes (RFC 4180, "" for a quote inside), but a quoted
// cell may not span lines. Numbers are parsed as float32 (features and
// float targets); empty cells, NaN and infinities are refused: fill or drop
// missing values before reading.
//
// Example: sklearn's breast cancer data (a count line, no header, 30
// features then the class):
//   CsvOptions options;
//   options.skip_lines = 1;
//   options.header = false;
//   options.target_columns = {"31"};
//   ReadCsv(".../sklearn/datasets/data/breast_cancer.csv", options);
//
// Errors (the message names the file and, for its contents, the 1-based
// line and the column):
//   InvalidArgument: bad options (no target column, kClassIndex with several,
//     a column both target and ignored, ...); an empty file or one with a
//     header but no rows; ragged rows; a cell that is not a finite number; a
//     class label that is not a non-negative integer (or >= num_classes);
//     duplicate column names; no feature columns; a line longer than
//     max_line_bytes or more than max_columns columns; files of different
//     lengths (targets_path).
//   NotFound: a missing file; a target or ignored column missing (the
//     message lists the columns found).
//   DataLoss: a damaged or truncated gzip stream.
//   ResourceExhausted: a file larger than max_file_bytes.
// Nothing is returned on any error.
absl::StatusOr<Dataset> ReadCsv(const std::string& path, const CsvOptions& options);

// ReadCsvChunks reads what ReadCsv does, handing `fn` `chunk_rows` rows at a
// time: the file is read a block at a time, so neither its text nor its
// numbers need fit in memory (a targets_path file is read whole first). The
// same errors, and those `fn` returns; `fn` may have been given some of the
// rows before an error is found.
absl::Status ReadCsvChunks(const std::string& path, const CsvOptions& options,
                           int64_t chunk_rows, const ChunkFn& fn);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_CSV_READER_H_
