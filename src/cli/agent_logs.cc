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

// Follows one service's log files: every instance dir under `dir`, stream `name`.
class LogFileSource final : public api::ChunkSource {
 public:
  LogFileSource(fs::path dir, std::string file_name, bool follow, std::optional<int> tail)
      : dir_(std::move(dir)), file_name_(std::move(file_name)), follow_(follow) {
    // Initial content: the whole file, or its last `tail` lines, instance by instance (oldest
    // instance first).
    std::vector<std::pair<fs::file_time_type, fs::path>> files;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      fs::path f = entry.path() / file_name_;
      if (fs::exists(f, ec)) files.emplace_back(fs::last_write_time(f, ec), f);
    }
    std::sort(files.begin(), files.end());
    for (const auto& [_, f] : files) {
      std::string instance = f.parent_path().filename().string();
      std::ifstream in(f, std::ios::binary);
      std::string line;
      std::deque<std::string> lines;
      while (std::getline(in, line)) {
        lines.push_back(instance + " | " + line + "\n");
        if (tail && static_cast<int>(lines.size()) > *tail) lines.pop_front();
      }
      for (auto& l : lines) pending_ += l;
      in.clear();
      offsets_[f.string()] = fs::file_size(f, ec);
    }
  }

  std::optional<std::string> poll() override {
    if (pending_.empty() && follow_) readNew();
    if (pending_.empty()) {
      if (!follow_) return std::nullopt;
      return std::string();
    }
    size_t n = std::min(pending_.size(), kMaxChunk);
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    return out;
  }

 private:
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
      std::string instance = entry.path().filename().string();
      size_t pos = 0;
      while (pos < data.size()) {
        size_t nl = data.find('\n', pos);
        pending_ += instance + " | " + data.substr(pos, nl - pos + 1);
        pos = nl + 1;
      }
    }
  }

  fs::path dir_;
  std::string file_name_;
  bool follow_;
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
