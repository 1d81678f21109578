#include "fuzz/fuzz_support.h"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_format.h"

namespace shoal::fuzz {

uint8_t FramedReader::Byte() { return pos_ < size_ ? data_[pos_++] : 0; }

std::string FramedReader::Part() {
  if (pos_ >= size_) return {};
  size_t len = data_[pos_++];
  if (pos_ < size_) len |= size_t{data_[pos_++]} << 8;
  len = std::min(len, size_ - pos_);
  std::string part(reinterpret_cast<const char*>(data_ + pos_), len);
  pos_ += len;
  return part;
}

std::string FramedReader::Rest() {
  std::string rest(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
  pos_ = size_;
  return rest;
}

std::string ExpandRepeats(absl::string_view input) {
  constexpr size_t kMaxOutput = size_t{4} << 20;
  std::string out;
  size_t pos = 0;
  while (pos < input.size() && out.size() < kMaxOutput) {
    const size_t open = input.find("{{", pos);
    const size_t star = open == absl::string_view::npos ? open : input.find('*', open);
    const size_t close = star == absl::string_view::npos ? star : input.find("}}", star);
    size_t count = 0;
    bool ok = close != absl::string_view::npos && star - open > 2 && star - open <= 9 &&
              close - star - 1 <= 16;
    for (size_t i = open + 2; ok && i < star; ++i) {
      ok = input[i] >= '0' && input[i] <= '9';
      count = count * 10 + static_cast<size_t>(input[i] - '0');
    }
    ok = ok && count >= 1 && count <= 1000000;
    if (!ok) {
      // Not a directive: copy up to and including its first brace.
      const size_t end = open == absl::string_view::npos ? input.size() : open + 1;
      out.append(input.data() + pos, end - pos);
      pos = end;
      continue;
    }
    out.append(input.data() + pos, open - pos);
    const absl::string_view unit = input.substr(star + 1, close - star - 1);
    for (size_t i = 0; i < count && out.size() < kMaxOutput; ++i) {
      out.append(unit.data(), unit.size());
    }
    pos = close + 2;
  }
  if (out.size() > kMaxOutput) out.resize(kMaxOutput);
  return out;
}

void AppendFramed(std::string* out, absl::string_view part) {
  const size_t len = std::min<size_t>(part.size(), 0xffff);
  out->push_back(static_cast<char>(len & 0xff));
  out->push_back(static_cast<char>(len >> 8));
  out->append(part.data(), len);
}

void WriteSeedsIfAsked(const std::function<std::vector<std::string>()>& make_seeds) {
  const char* dir = std::getenv("SHOAL_FUZZ_WRITE_SEEDS");
  if (dir == nullptr || *dir == '\0') return;
  std::filesystem::create_directories(dir);
  const std::vector<std::string> seeds = make_seeds();
  for (size_t i = 0; i < seeds.size(); ++i) {
    const std::string path = absl::StrFormat("%s/seed-%02d", dir, i);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(seeds[i].data(), static_cast<std::streamsize>(seeds[i].size()));
    if (!out) {
      std::fprintf(stderr, "cannot write seed %s\n", path.c_str());
      std::exit(1);
    }
  }
  std::fprintf(stderr, "wrote %zu seeds to %s\n", seeds.size(), dir);
  std::exit(0);
}

namespace {

std::string* scratch = nullptr;

void RemoveScratch() {
  std::error_code ec;
  if (scratch != nullptr) std::filesystem::remove_all(*scratch, ec);
}

}  // namespace

const std::string& ScratchDir() {
  if (scratch == nullptr) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = absl::StrFormat("%s/shoal-fuzz-XXXXXX",
                                          tmp != nullptr && *tmp ? tmp : "/tmp");
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    scratch = new std::string(pattern);
    std::atexit(RemoveScratch);
  }
  return *scratch;
}

void QuietLogs() {
  spdlog::set_level(spdlog::level::off);
  // Protobuf logs every string field with invalid UTF-8 it parses.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int,
                                     const std::string&) {});
}

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "property violated: %s\n", what);
  std::abort();
}

}  // namespace shoal::fuzz
