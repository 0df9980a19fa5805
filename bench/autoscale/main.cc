// autoscale_sim: replays request traces through Baton's autoscaling policy and the baselines,
// and prints instance-seconds, waits, losses and cold starts per trace and policy.
//   autoscale_sim                       # all built-in traces
//   autoscale_sim --builtin bursts --trace ../shared/traces/azure-llm-2023-code.csv --json
//   autoscale_sim --functions invocations.csv --durations durations.csv   # every function
#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "sim.h"

using namespace baton::autoscale_sim;

namespace {

std::string pct(double num, double den) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", den > 0 ? 100.0 * num / den : 0.0);
  return buf;
}

// A served request that waited over 100 ms, or one that was never served, missed the SLO.
uint64_t sloMisses(const Result& r) { return r.over_100ms + r.lost; }

std::string ratio(double num, double den) {
  if (den <= 0) return num > 0 ? "inf" : "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", num / den);
  return buf;
}

nlohmann::json resultJson(const Result& r) {
  return {{"requests", r.requests},
          {"instance_seconds", r.instance_seconds},
          {"cold_starts", r.cold_starts},
          {"slo_misses", sloMisses(r)},
          {"over_100ms", r.over_100ms},
          {"lost", r.lost},
          {"starts", r.starts},
          {"p99_wait_ms", r.p99_wait_ms},
          {"peak_instances", r.peak_instances}};
}

// --functions: every function of a per-minute counts file as its own service, each policy over
// the same arrivals; per function and in total, with Baton's ratios to KPA and the oracle.
int runFunctions(const std::string& invocations, const std::string& durations,
                 const TraceOptions& topt, const SimOptions& sopt,
                 const std::vector<std::string>& policies, bool json) {
  LoadedFunctions lf = loadFunctions(invocations, durations, topt);
  if (!lf.error.empty()) {
    std::fprintf(stderr, "autoscale_sim: %s\n", lf.error.c_str());
    return 1;
  }
  std::map<std::string, Result> total;
  for (const std::string& p : policies) total[p].policy = p;
  auto has = [&](const char* p) { return total.count(p) > 0; };
  nlohmann::json rows = nlohmann::json::array();
  if (!json) {
    std::printf("| row | trigger | requests | mean ms |");
    for (const std::string& p : policies) std::printf(" %s |", p.c_str());
    if (has("baton") && has("kpa")) std::printf(" baton/kpa instance-s | baton/kpa cold |");
    if (has("baton") && has("oracle")) std::printf(" baton/oracle instance-s |");
    std::printf("\n|---:|---|---:|---:|");
    for (size_t i = 0; i < policies.size(); ++i) std::printf("---:|");
    if (has("baton") && has("kpa")) std::printf("---:|---:|");
    if (has("baton") && has("oracle")) std::printf("---:|");
    std::printf("\n");
  }
  for (const FunctionTrace& f : lf.functions) {
    std::map<std::string, Result> res;
    for (const std::string& p : policies) {
      Result r = simulate(f.scenario, p, sopt);
      Result& t = total[p];
      t.requests += r.requests;
      t.served += r.served;
      t.lost += r.lost;
      t.over_100ms += r.over_100ms;
      t.cold_starts += r.cold_starts;
      t.starts += r.starts;
      t.instance_seconds += r.instance_seconds;
      t.peak_instances = std::max(t.peak_instances, r.peak_instances);
      res.emplace(p, std::move(r));
    }
    if (json) {
      nlohmann::json j = {{"row", f.row},
                          {"function", f.hash},
                          {"trigger", f.trigger},
                          {"requests", f.requests},
                          {"service_mean_ms", f.service_ms},
                          {"service_from_durations", f.has_duration}};
      for (const auto& [p, r] : res) j["policies"][p] = resultJson(r);
      rows.push_back(j);
      continue;
    }
    std::printf("| %zu | %s | %llu | %g |", f.row, f.trigger.c_str(),
                (unsigned long long)f.requests, f.service_ms);
    for (const std::string& p : policies) {
      const Result& r = res.at(p);
      std::printf(" %.0f / %llu / %llu |", r.instance_seconds, (unsigned long long)r.cold_starts,
                  (unsigned long long)sloMisses(r));
    }
    if (has("baton") && has("kpa")) {
      const Result &b = res.at("baton"), &k = res.at("kpa");
      std::printf(" %s | %llu / %llu |", ratio(b.instance_seconds, k.instance_seconds).c_str(),
                  (unsigned long long)b.cold_starts, (unsigned long long)k.cold_starts);
    }
    if (has("baton") && has("oracle")) {
      std::printf(
          " %s |",
          ratio(res.at("baton").instance_seconds, res.at("oracle").instance_seconds).c_str());
    }
    std::printf("\n");
  }

  nlohmann::json ratios = nlohmann::json::object();
  if (has("baton") && has("kpa")) {
    const Result &b = total.at("baton"), &k = total.at("kpa");
    ratios["baton_over_kpa"] = {
        {"instance_seconds", k.instance_seconds > 0 ? b.instance_seconds / k.instance_seconds : 0},
        {"cold_starts", k.cold_starts ? double(b.cold_starts) / double(k.cold_starts) : 0},
        {"slo_misses", sloMisses(k) ? double(sloMisses(b)) / double(sloMisses(k)) : 0}};
  }
  if (has("baton") && has("oracle")) {
    const Result &b = total.at("baton"), &o = total.at("oracle");
    ratios["baton_over_oracle"] = {
        {"instance_seconds", o.instance_seconds > 0 ? b.instance_seconds / o.instance_seconds : 0}};
  }
  const int n = static_cast<int>(lf.functions.size());
  if (json) {
    nlohmann::json totals = nlohmann::json::object();
    for (const std::string& p : policies) totals[p] = resultJson(total.at(p));
    nlohmann::json out = {{"invocations", invocations},
                          {"durations", durations},
                          {"functions", rows},
                          {"totals", totals},
                          {"ratios", ratios},
                          {"settings",
                           {{"concurrency", topt.concurrency},
                            {"min", topt.min},
                            {"max", topt.max},
                            {"idle_s", topt.idle_s},
                            {"cold_start_ms", topt.cold_start_s * 1000},
                            {"seed", topt.seed},
                            {"service_distribution", "exponential"},
                            {"slo", "waited over 100 ms, or lost"}}}};
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("\nCells: instance-s / cold starts / SLO misses (waited over 100 ms, or lost).\n\n");
  std::printf(
      "| total (%d functions) | requests | instance-s | cold starts | SLO misses | lost |"
      " starts |\n|---|---:|---:|---:|---:|---:|---:|\n",
      n);
  for (const std::string& p : policies) {
    const Result& r = total.at(p);
    std::printf("| %s | %llu | %.0f | %llu | %llu | %llu | %llu |\n", p.c_str(),
                (unsigned long long)r.requests, r.instance_seconds,
                (unsigned long long)r.cold_starts, (unsigned long long)sloMisses(r),
                (unsigned long long)r.lost, (unsigned long long)r.starts);
  }
  for (const char* other : {"kpa", "oracle"}) {
    if (!has("baton") || !has(other)) continue;
    const Result &b = total.at("baton"), &o = total.at(other);
    std::printf("| baton / %s | | %s | %s | %s | | |\n", other,
                ratio(b.instance_seconds, o.instance_seconds).c_str(),
                ratio(double(b.cold_starts), double(o.cold_starts)).c_str(),
                ratio(double(sloMisses(b)), double(sloMisses(o))).c_str());
  }
  std::printf(
      "\nEach function its own service: min %d, max %d, concurrency %d, idle %.0f s, cold start "
      "%.1f s; service times exponential around the function's Average (durations file, at "
      "least 1 ms; else %.0f ms); placement seed %llu.\n",
      topt.min, topt.max, topt.concurrency, topt.idle_s, topt.cold_start_s,
      topt.service_mean_s * 1000, (unsigned long long)topt.seed);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Replay request traces through autoscaling policies (Baton, static-max, HPA, KPA)"};
  std::vector<std::string> traces;
  std::vector<std::string> builtins;
  std::vector<std::string> policies;
  std::string functions;
  std::string durations;
  bool json = false;
  uint64_t seed = 42;
  TraceOptions topt;
  SimOptions sopt;
  double service_ms = topt.service_mean_s * 1000;
  double cold_ms = topt.cold_start_s * 1000;
  app.add_option("--trace", traces, "CSV trace file(s) with a TIMESTAMP column");
  app.add_option("--builtin", builtins, "built-in trace(s): shop-week, bursts, spiky-api, all")
      ->check(CLI::IsMember({"shop-week", "bursts", "spiky-api", "all"}));
  app.add_option("--functions", functions,
                 "per-minute invocation counts (Azure Functions 2019 format): every function as "
                 "its own service, with the oracle; totals and ratios");
  app.add_option("--durations", durations,
                 "with --functions: durations CSV (a function's Average is its mean service "
                 "time)");
  app.add_option("--policy", policies,
                 "policies to run (default: baton static-max hpa kpa; with --functions also "
                 "oracle)")
      ->check(CLI::IsMember(allPolicyNames()));
  app.add_flag("--json", json, "print JSON instead of a table");
  app.add_option("--seed", seed,
                 "random seed (service times, synthetic traffic; default 42, with --functions 1 "
                 "as to_arrivals.py)");
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
  if (!functions.empty()) {
    if (!builtins.empty() || !traces.empty()) {
      std::fprintf(stderr, "autoscale_sim: --functions runs alone (no --trace or --builtin)\n");
      return 2;
    }
    if (app.count("--seed") == 0) topt.seed = 1;  // to_arrivals.py's default
    if (policies.empty()) policies = allPolicyNames();
    return runFunctions(functions, durations, topt, sopt, policies, json);
  }
  if (!durations.empty()) {
    std::fprintf(stderr, "autoscale_sim: --durations goes with --functions\n");
    return 2;
  }
  if (policies.empty()) policies = policyNames();

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
