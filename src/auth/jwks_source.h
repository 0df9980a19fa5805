// Where a provider's keys come from: a JWKS file (reloaded when its mtime changes) or an https
// URL (fetched by a background thread with Boost.Beast over OpenSSL, certificate verified
// against the system store or a configured CA file, with a deadline and a size bound).
//
// Data flow: a loader (file read or https GET) -> parseJwks -> a new shared_ptr<const KeySet>
// swapped in atomically. Readers (gateway threads) take a snapshot with keys(): one atomic
// shared_ptr load, no lock, no I/O (file sources also stat the file at most once per
// file_check_interval). A previous good key set stays in force when a reload fails.
//
// Unknown kid: onUnknownKid() asks for a refetch, at most once per refetch_interval (default
// 30 s) per source. File sources check the file at once and return the new snapshot when it
// changed; URL sources wake the fetcher and return nullptr (the request at hand fails with
// unknown_kid; the data path never waits on the network), so clients retry after rotation.
//
// Thread safety: every method may be called from any thread. Ownership: the Clock must outlive
// the source; the destructor stops and joins the fetcher thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "auth/jwks.h"
#include "core/clock.h"
#include "core/result.h"

namespace baton::auth {

// Gives an IdentityProvider its keys. Implementations are thread-safe.
class KeySource {
 public:
  virtual ~KeySource() = default;
  // The current key set; nullptr if none was ever loaded.
  virtual std::shared_ptr<const KeySet> keys() = 0;
  // A token named a kid we do not know: refresh if allowed. Returns a newer key set when one
  // is available at once, nullptr otherwise.
  virtual std::shared_ptr<const KeySet> onUnknownKid() = 0;
};

// A fixed key set (tests, benchmarks, keys given inline).
class StaticKeySource final : public KeySource {
 public:
  explicit StaticKeySource(std::shared_ptr<const KeySet> keys) : keys_(std::move(keys)) {}
  std::shared_ptr<const KeySet> keys() override { return keys_; }
  std::shared_ptr<const KeySet> onUnknownKid() override { return nullptr; }

 private:
  std::shared_ptr<const KeySet> keys_;
};

struct JwksSourceOptions {
  std::string ca_file;                            // https: PEM CA bundle; empty = system store
  Duration fetch_timeout = Duration(5000);        // https: whole fetch (connect..body)
  Duration refresh_interval = Duration(600'000);  // https: periodic refetch; 0 = none
  Duration retry_interval = Duration(30'000);     // https: after a failed fetch
  Duration refetch_interval = Duration(30'000);   // unknown-kid refetch rate limit
  Duration file_check_interval = Duration(1000);  // file: mtime check period in keys()
  size_t max_bytes = kMaxJwksBytes;
  bool start_thread = true;  // https: run the background fetcher (tests may drive reload())
};

class JwksSource final : public KeySource {
 public:
  // `location`: a file path or "https://host[:port]/path". Performs the first load
  // synchronously; a file that cannot be read or parsed is an error, an https fetch that fails
  // is not (the agent starts; the fetcher retries; lastError() tells why; keys() is nullptr).
  static Result<std::unique_ptr<JwksSource>> open(std::string location, Clock& clock,
                                                  JwksSourceOptions opts = {});
  ~JwksSource() override;
  JwksSource(const JwksSource&) = delete;
  JwksSource& operator=(const JwksSource&) = delete;

  std::shared_ptr<const KeySet> keys() override;
  std::shared_ptr<const KeySet> onUnknownKid() override;

  // Loads now on the calling thread (file read or https fetch) and swaps on success.
  Status reload();
  // Successful loads so far (1 after a good open).
  uint64_t generation() const { return generation_.load(); }
  // Blocks until generation() > `after` or `timeout` (real time) passes; for tests and
  // startup. Returns whether the generation moved.
  bool waitForGeneration(uint64_t after, std::chrono::milliseconds timeout);
  Status lastError() const;
  // Unknown-kid refetches that passed the rate limit.
  uint64_t refetchRequests() const { return refetch_requests_.load(); }
  bool isUrl() const { return is_url_; }

 private:
  JwksSource(std::string location, Clock& clock, JwksSourceOptions opts, bool is_url);
  Status loadOnce();  // read/fetch + parse + swap
  void checkFile(bool force);
  void fetcherLoop();

  const std::string location_;
  Clock& clock_;
  const JwksSourceOptions opts_;
  const bool is_url_;

  std::atomic<std::shared_ptr<const KeySet>> current_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> refetch_requests_{0};
  std::atomic<int64_t> next_file_check_ns_{0};
  std::atomic<int64_t> last_refetch_ns_{INT64_MIN};
  std::atomic<int64_t> file_mtime_ns_{-1};

  mutable std::mutex mu_;  // guards the fields below and serializes loads
  std::mutex load_mu_;
  std::condition_variable cv_;      // wakes the fetcher
  std::condition_variable gen_cv_;  // generation moved
  Status last_error_;
  bool refetch_requested_ = false;
  bool stopping_ = false;
  std::thread fetcher_;
};

// An https GET with the options' CA, deadline and size bound, for JwksSource (exposed for
// tests). Only "https://" URLs; the body of a 200 response, else an error.
Result<std::string> httpsGet(const std::string& url, const JwksSourceOptions& opts);

}  // namespace baton::auth
