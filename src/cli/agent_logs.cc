#include "cli/agent_logs.h"

#include <algorithm>
#include <deque>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace baton::cli {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxChunk = 64 << 10;

// Where the last `n` lines of `f` (of `size` bytes) begin: read backwards a block at a time,
// so a large file is never read whole.
uintmax_t tailOffset(const fs::path& f, uintmax_t size, int n) {
  if (n <= 0) return size;
  std::ifstream in(f, std::ios::binary);
  std::string block;
  uintmax_t pos = size;
  int newlines = 0;
  bool skip_final = true;  // the newline that ends the last line does not start one
  while (pos > 0) {
    const uintmax_t len = std::min<uintmax_t>(pos, kMaxChunk);
    pos -= len;
    block.resize(static_cast<size_t>(len));
    in.seekg(static_cast<std::streamoff>(pos));
    in.read(block.data(), static_cast<std::streamsize>(len));
    for (size_t i = block.size(); i-- > 0;) {
      if (block[i] != '\n') continue;
      if (skip_final && pos + i + 1 == size) {
        skip_final = false;
        continue;
      }
      if (++newlines == n) return pos + i + 1;
    }
  }
  return 0;
}

// One service's log files: every instance dir under `dir`, stream `name`. What exists is read
// from disk a chunk at a time as the client takes it (never a whole file in memory), oldest
// instance first; with follow, then what is appended, as it comes.
class LogFileSource final : public api::ChunkSource {
 public:
  LogFileSource(fs::path dir, std::string file_name, bool follow, std::optional<int> tail)
      : dir_(std::move(dir)), file_name_(std::move(file_name)), follow_(follow) {
    std::vector<std::pair<fs::file_time_type, fs::path>> files;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      fs::path f = entry.path() / file_name_;
      if (fs::exists(f, ec)) files.emplace_back(fs::last_write_time(f, ec), f);
    }
    std::sort(files.begin(), files.end());
    for (const auto& [_, f] : files) {
      const uintmax_t size = fs::file_size(f, ec);
      if (ec) continue;
      offsets_[f.string()] = size;  // follow picks up from here
      const uintmax_t from = tail ? tailOffset(f, size, *tail) : 0;
      if (from < size) parts_.push_back({f, f.parent_path().filename().string(), from, size});
    }
  }

  std::optional<std::string> poll() override {
    if (pending_.empty() && !parts_.empty()) readPart();
    if (pending_.empty() && parts_.empty() && follow_) readNew();
    if (pending_.empty()) {
      if (!follow_ && parts_.empty()) return std::nullopt;
      return std::string();
    }
    size_t n = std::min(pending_.size(), kMaxChunk);
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    return out;
  }

 private:
  struct Part {
    fs::path file;
    std::string instance;
    uintmax_t offset;  // next byte to read
    uintmax_t end;     // the file's size when the request came
  };

  // "instance | line\n" for each whole line of `data`.
  void addLines(const std::string& instance, const std::string& data) {
    size_t pos = 0;
    while (pos < data.size()) {
      size_t nl = data.find('\n', pos);
      if (nl == std::string::npos) nl = data.size() - 1;
      pending_ += instance + " | " + data.substr(pos, nl - pos);
      pending_ += '\n';
      pos = nl + 1;
    }
  }

  // The next chunk of the oldest part not yet sent.
  void readPart() {
    Part& p = parts_.front();
    std::ifstream in(p.file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(p.offset));
    std::string data(static_cast<size_t>(std::min<uintmax_t>(p.end - p.offset, kMaxChunk)), '\0');
    in.read(data.data(), static_cast<std::streamsize>(data.size()));
    data.resize(static_cast<size_t>(in.gcount()));
    if (data.empty()) {  // truncated meanwhile (rotated)
      parts_.pop_front();
      return;
    }
    const bool last = p.offset + data.size() >= p.end;
    // Whole lines; at the part's end its last line even without a newline. A single line
    // longer than a chunk goes out in pieces.
    if (!last) {
      size_t cut = data.rfind('\n');
      if (cut != std::string::npos) data.resize(cut + 1);
    }
    p.offset += data.size();
    addLines(p.instance, data);
    if (p.offset >= p.end) parts_.pop_front();
  }

  void readNew() {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      fs::path f = entry.path() / file_name_;
      uintmax_t size = fs::file_size(f, ec);
      if (ec) continue;
      auto [it, inserted] = offsets_.try_emplace(f.string(), 0);
      if (size < it->second) it->second = 0;  // rotated: start the new file from its top
      if (size == it->second) continue;
      std::ifstream in(f, std::ios::binary);
      in.seekg(static_cast<std::streamoff>(it->second));
      std::string data(std::min<uintmax_t>(size - it->second, kMaxChunk), '\0');
      in.read(data.data(), static_cast<std::streamsize>(data.size()));
      data.resize(static_cast<size_t>(in.gcount()));
      // Only whole lines; a partial last line waits for its end.
      size_t end = data.rfind('\n');
      if (end == std::string::npos) continue;
      data.resize(end + 1);
      it->second += data.size();
      addLines(entry.path().filename().string(), data);
    }
  }

  fs::path dir_;
  std::string file_name_;
  bool follow_;
  std::deque<Part> parts_;
  std::map<std::string, uintmax_t> offsets_;
  std::string pending_;
};

}  // namespace

api::LogReader makeFileLogReader(fs::path logs_root) {
  return [root = std::move(logs_root)](
             const api::LogRequest& req) -> Result<std::unique_ptr<api::ChunkSource>> {
    fs::path dir = root / req.app / req.service;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      return notFound("no logs for " + req.app + "/" + req.service + " on this node");
    }
    std::string file = req.stream == "stderr" ? "stderr.log" : "stdout.log";
    return std::unique_ptr<api::ChunkSource>(
        std::make_unique<LogFileSource>(dir, file, req.follow, req.tail));
  };
}

}  // namespace baton::cli
