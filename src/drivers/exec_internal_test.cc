#include "drivers/exec_internal.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

namespace baton::drivers::exec {
namespace {

namespace fs = std::filesystem;

TEST(ExpandArgvTest, ReplacesVariablesFromEnv) {
  auto out = expandArgv({"python3", "-m", "http.server", "${PORT}", "a${X}b${X}"},
                        {{"PORT", "8000"}, {"X", "-"}});
  ASSERT_TRUE(out.isOk());
  EXPECT_EQ(*out, (std::vector<std::string>{"python3", "-m", "http.server", "8000", "a-b-"}));
}

TEST(ExpandArgvTest, KeepsOtherDollarsAndUnescapesDoubleDollarBrace) {
  auto out = expandArgv({"echo $PORT $$ $1", "$${PORT}", "$"}, {{"PORT", "1"}});
  ASSERT_TRUE(out.isOk());
  EXPECT_EQ(*out, (std::vector<std::string>{"echo $PORT $$ $1", "${PORT}", "$"}));
}

TEST(ExpandArgvTest, UnknownOrUnterminatedVariableIsAnError) {
  auto unknown = expandArgv({"x", "${NOPE}"}, {});
  ASSERT_FALSE(unknown.isOk());
  EXPECT_EQ(unknown.status().code(), Code::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("run[1]: unknown variable ${NOPE}"), std::string::npos);
  EXPECT_FALSE(expandArgv({"${PORT"}, {{"PORT", "1"}}).isOk());
}

TEST(TaskFilesTest, StateAndExitRoundTrip) {
  SupervisorState s;
  s.supervisor_pid = 10;
  s.supervisor_start = 11;
  s.pid = 12;
  s.pid_start = 13;
  s.started_at_ms = 14;
  s.cgroup_version = "v1";
  s.cgroup_dirs = {"/a", "/b"};
  s.warnings = {"w"};
  auto back = decodeState(encodeState(s));
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(back->pid, 12);
  EXPECT_EQ(back->cgroup_dirs, s.cgroup_dirs);

  ExitStatus e;
  e.exit_code = 137;
  e.signal = 9;
  e.oom_killed = true;
  e.finished_at = fromUnixMillis(99);
  auto eb = decodeExit(encodeExit(e));
  ASSERT_TRUE(eb.isOk());
  EXPECT_EQ(eb->exit_code, 137);
  EXPECT_EQ(eb->signal, 9);
  EXPECT_TRUE(eb->oom_killed);
  EXPECT_EQ(toUnixMillis(eb->finished_at), 99);
  EXPECT_FALSE(decodeExit("{").isOk());
}

TEST(RotatingLogTest, RotatesBeforeExceedingMaxAndDropsTheOldest) {
  std::string tmpl = (fs::temp_directory_path() / "baton-rot-XXXXXX").string();
  fs::path dir = ::mkdtemp(tmpl.data());
  {
    RotatingLog log(dir / "out.log", 10, 2);
    ASSERT_TRUE(log.open().isOk());
    for (char c = 'a'; c < 'a' + 5; ++c) {
      std::string chunk(10, c);
      log.write(chunk.data(), chunk.size());
    }
  }
  auto read = [&](const char* name) {
    std::ifstream in(dir / name);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  EXPECT_EQ(read("out.log"), std::string(10, 'e'));
  EXPECT_EQ(read("out.log.1"), std::string(10, 'd'));
  EXPECT_EQ(read("out.log.2"), std::string(10, 'c'));
  EXPECT_FALSE(fs::exists(dir / "out.log.3"));
  fs::remove_all(dir);
}

TEST(ProcessTest, LivenessChecksStartTime) {
  auto start = processStartTime(::getpid());
  ASSERT_TRUE(start.has_value());
  EXPECT_TRUE(processAlive(::getpid(), *start));
  EXPECT_FALSE(processAlive(::getpid(), *start + 1));
  EXPECT_FALSE(processAlive(0, 0));
}

}  // namespace
}  // namespace baton::drivers::exec
