// autoscale_sim: replays request traces through Baton's autoscaling policy and the baselines,
// and prints instance-seconds, waits, losses and cold starts per trace and policy.
//   autoscale_sim                       # all built-in traces
//   autoscale_sim --builtin bursts --trace ../shared/traces/azure-llm-2023-code.csv --json
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "sim.h"

using namespace baton::autoscale_sim;

namespace {

std::string pct(double num, double den) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", den > 0 ? 100.0 * num / den : 0.0);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Replay request traces through autoscaling policies (Baton, static-max, HPA, KPA)"};
  std::vector<std::string> traces;
  std::vector<std::string> builtins;
  std::vector<std::string> policies = policyNames();
  bool json = false;
  uint64_t seed = 42;
  TraceOptions topt;
  SimOptions sopt;
  double service_ms = topt.service_mean_s * 1000;
  double cold_ms = topt.cold_start_s * 1000;
  app.add_option("--trace", traces, "CSV trace file(s) with a TIMESTAMP column");
  app.add_option("--builtin", builtins, "built-in trace(s): shop-week, bursts, spiky-api, all")
      ->check(CLI::IsMember({"shop-week", "bursts", "spiky-api", "all"}));
  app.add_option("--policy", policies, "policies to run (default: all)")
      ->check(CLI::IsMember(policyNames()));
  app.add_flag("--json", json, "print JSON instead of a table");
  app.add_option("--seed", seed, "random seed (service times, synthetic traffic)");
  app.add_option("--concurrency", topt.concurrency, "trace files: requests per instance")
      ->capture_default_str();
  app.add_option("--min", topt.min, "trace files: min instances")->capture_default_str();
  app.add_option("--max", topt.max, "trace files: max instances")->capture_default_str();
  app.add_option("--idle", topt.idle_s, "trace files: idle seconds before zero")
      ->capture_default_str();
  app.add_option("--service-ms", service_ms, "trace files: mean service time (exponential)")
      ->capture_default_str();
  app.add_option("--cold-start-ms", cold_ms, "trace files: instance start to ready")
      ->capture_default_str();
  app.add_option("--tick-ms", sopt.tick_s, "controller period in ms")->transform([](std::string s) {
    return std::to_string(std::stod(s) / 1000);
  });
  app.add_option("--hold-timeout", sopt.hold_timeout_s, "seconds a held request may wait")
      ->capture_default_str();
  app.add_option("--cold-start-penalty", sopt.baton_penalty_s,
                 "baton policy: seconds of one warm instance a cold start is worth");
  app.add_option("--min-idle", sopt.baton_min_idle_s, "baton policy: shortest keep-alive, s");
  std::vector<std::string> sets;
  app.add_option("--baton-set", sets,
                 "baton policy: NAME=VALUE for a PolicyParams field (durations in s), repeatable");
  CLI11_PARSE(app, argc, argv);
  for (const std::string& kv : sets) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "autoscale_sim: --baton-set wants NAME=VALUE, got %s\n", kv.c_str());
      return 2;
    }
    sopt.baton_set.emplace_back(kv.substr(0, eq), std::stod(kv.substr(eq + 1)));
  }
  topt.service_mean_s = service_ms / 1000;
  topt.cold_start_s = cold_ms / 1000;
  topt.seed = seed;

  std::vector<Scenario> scenarios;
  if (builtins.empty() && traces.empty()) builtins = {"all"};
  for (const std::string& b : builtins) {
    for (const std::string& n : b == "all" ? builtinNames() : std::vector<std::string>{b}) {
      scenarios.push_back(*builtin(n, seed));
    }
  }
  for (const std::string& path : traces) {
    LoadedTrace lt = loadCsvTrace(path, topt);
    if (!lt.error.empty()) {
      std::fprintf(stderr, "autoscale_sim: %s\n", lt.error.c_str());
      return 1;
    }
    if (lt.skipped > 0) {
      std::fprintf(stderr, "autoscale_sim: %s: skipped %zu unparsable rows\n", path.c_str(),
                   lt.skipped);
    }
    scenarios.push_back(std::move(lt.scenario));
  }

  nlohmann::json out = nlohmann::json::array();
  if (!json) {
    std::printf(
        "| trace | policy | requests | instance-s | vs static-max | waits >100ms | lost |"
        " cold starts | starts | p99 wait ms | peak |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  }
  for (const Scenario& sc : scenarios) {
    std::vector<Result> results;
    for (const std::string& p : policies) results.push_back(simulate(sc, p, sopt));
    double static_is = 0;
    for (const Result& r : results) {
      if (r.policy == "static-max") static_is = r.instance_seconds;
    }
    for (const Result& r : results) {
      if (json) {
        out.push_back({{"trace", r.scenario},
                       {"description", sc.description},
                       {"policy", r.policy},
                       {"requests", r.requests},
                       {"served", r.served},
                       {"instance_seconds", r.instance_seconds},
                       {"over_100ms", r.over_100ms},
                       {"over_100ms_share", r.requests ? double(r.over_100ms) / r.requests : 0},
                       {"lost", r.lost},
                       {"cold_starts", r.cold_starts},
                       {"starts", r.starts},
                       {"p99_wait_ms", r.p99_wait_ms},
                       {"peak_instances", r.peak_instances},
                       {"concurrency", sc.scale.concurrency},
                       {"service_mean_ms", sc.service_mean_s * 1000},
                       {"service_distribution", "exponential"},
                       {"cold_start_ms", sc.cold_start_s * 1000},
                       {"decision_hash", r.decision_hash},
                       {"instance_s_by_hour", r.instance_s_by_hour},
                       {"cold_starts_by_hour", r.cold_starts_by_hour}});
      } else {
        std::printf("| %s | %s | %llu | %.0f | %s | %s | %llu | %llu | %llu | %.0f | %d |\n",
                    r.scenario.c_str(), r.policy.c_str(), (unsigned long long)r.requests,
                    r.instance_seconds,
                    static_is > 0 ? pct(r.instance_seconds, static_is).c_str() : "-",
                    pct(double(r.over_100ms), double(r.requests)).c_str(),
                    (unsigned long long)r.lost, (unsigned long long)r.cold_starts,
                    (unsigned long long)r.starts, r.p99_wait_ms, r.peak_instances);
      }
    }
  }
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("\nService times: exponential; per trace: ");
    for (const Scenario& sc : scenarios) {
      std::printf("%s mean %.0f ms, concurrency %d, cold start %.1f s, min %d max %d; ",
                  sc.name.c_str(), sc.service_mean_s * 1000, sc.scale.concurrency, sc.cold_start_s,
                  sc.scale.min, sc.scale.max);
    }
    std::printf("\n");
  }
  return 0;
}
