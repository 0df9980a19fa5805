// The oci driver's pure parts (image documents, entry names, users, the runtime config) and
// its image unpacking (layers, whiteouts, escapes, the cache), on temp dirs.
#include "drivers/oci_image.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "drivers/oci_bundle.h"
#include "drivers/oci_image_store.h"
#include "drivers/oci_layer.h"
#include "drivers/oci_test_image.h"

namespace baton::drivers::oci {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
namespace t = testing;

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "baton-oci-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// ---- references and documents --------------------------------------------------------------

TEST(OciImageTest, ParsesReferences) {
  auto a = parseImageRef("oci-archive:/srv/app.tar");
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->kind, ImageRef::Kind::kArchive);
  EXPECT_EQ(a->path, "/srv/app.tar");
  auto l = parseImageRef("oci:/srv/layout/");
  ASSERT_TRUE(l.isOk());
  EXPECT_EQ(l->kind, ImageRef::Kind::kLayout);
  EXPECT_FALSE(parseImageRef("docker.io/library/nginx").isOk());
  EXPECT_FALSE(parseImageRef("oci-archive:relative.tar").isOk());
  EXPECT_FALSE(parseImageRef("oci:").isOk());
}

const char* kDigestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const char* kDigestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

TEST(OciImageTest, SelectsThePlatformsManifest) {
  json index = {
      {"manifests",
       {{{"digest", kDigestA}, {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}},
        {{"digest", kDigestB}, {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
  auto d = selectManifest(index.dump(), "linux", "amd64");
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_EQ(d->digest, kDigestB);
  auto none = selectManifest(index.dump(), "linux", "riscv64");
  ASSERT_FALSE(none.isOk());
  EXPECT_NE(none.status().message().find("has no linux/riscv64 manifest"), std::string::npos)
      << none.status().message();
  EXPECT_NE(none.status().message().find("linux/arm64"), std::string::npos);

  json single = {{"manifests", {{{"digest", kDigestA}}}}};
  EXPECT_EQ(selectManifest(single.dump(), "linux", "amd64")->digest, kDigestA);
  json bad = {{"manifests", {{{"digest", "sha256:../../etc"}}}}};
  EXPECT_FALSE(selectManifest(bad.dump(), "linux", "amd64").isOk());
  EXPECT_FALSE(selectManifest("{", "linux", "amd64").isOk());
}

TEST(OciImageTest, ParsesManifestAndConfig) {
  json manifest = {{"config", {{"digest", kDigestA}}},
                   {"layers", {{{"digest", kDigestA}, {"size", 10}}, {{"digest", kDigestB}}}}};
  auto m = parseManifest(manifest.dump());
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  ASSERT_EQ(m->layers.size(), 2u);
  EXPECT_EQ(m->layers[0].size, 10);
  EXPECT_EQ(m->layers[1].digest, kDigestB);
  EXPECT_FALSE(isIndex(manifest.dump()));
  EXPECT_TRUE(isIndex(R"({"manifests": []})"));

  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"config",
                  {{"Entrypoint", {"/app"}},
                   {"Cmd", {"--serve"}},
                   {"Env", {"A=1"}},
                   {"WorkingDir", "/srv"},
                   {"User", "app"}}}};
  auto c = parseImageConfig(config.dump());
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->entrypoint, std::vector<std::string>{"/app"});
  EXPECT_EQ(c->cmd, std::vector<std::string>{"--serve"});
  EXPECT_EQ(c->working_dir, "/srv");
  EXPECT_EQ(c->user, "app");
  EXPECT_EQ(c->architecture, "amd64");
}

TEST(OciImageTest, DigestsMustBeSha256Hex) {
  EXPECT_EQ(*digestHex(kDigestA), std::string(64, 'a'));
  EXPECT_FALSE(digestHex("sha512:aa").isOk());
  EXPECT_FALSE(digestHex("sha256:AAAA").isOk());
  EXPECT_FALSE(digestHex(std::string("sha256:") + std::string(63, 'a') + "/").isOk());
}

TEST(OciImageTest, EntryNamesStayBelowTheRoot) {
  EXPECT_EQ(*entryComponents("./usr//bin/"), (std::vector<std::string>{"usr", "bin"}));
  EXPECT_EQ(*entryComponents("etc/passwd"), (std::vector<std::string>{"etc", "passwd"}));
  EXPECT_TRUE(entryComponents("./")->empty());
  EXPECT_TRUE(entryComponents(".")->empty());
  EXPECT_FALSE(entryComponents("/etc/passwd").isOk());
  EXPECT_FALSE(entryComponents("../x").isOk());
  EXPECT_FALSE(entryComponents("a/../../x").isOk());
  EXPECT_TRUE(entryComponents("a/..b/c").isOk());  // only ".." itself climbs
}

TEST(OciImageTest, RecognizesWhiteouts) {
  EXPECT_EQ(whiteoutOf(".wh..wh..opq").kind, WhiteoutKind::kOpaque);
  Whiteout w = whiteoutOf(".wh.passwd");
  EXPECT_EQ(w.kind, WhiteoutKind::kFile);
  EXPECT_EQ(w.target, "passwd");
  EXPECT_EQ(whiteoutOf("passwd").kind, WhiteoutKind::kNone);
  EXPECT_EQ(whiteoutOf(".wh.").kind, WhiteoutKind::kNone);
}

TEST(OciImageTest, ResolvesImageUsers) {
  const char* passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n";
  const char* group = "root:x:0:\nstaff:x:50:\napp:x:1001:\n";
  auto app = resolveImageUser("app", passwd, group);
  ASSERT_TRUE(app.isOk());
  EXPECT_EQ(app->uid, 1000);
  EXPECT_EQ(app->gid, 1001);
  EXPECT_EQ(resolveImageUser("1000", passwd, group)->gid, 1001);
  EXPECT_EQ(resolveImageUser("4242", passwd, group)->gid, 4242);
  EXPECT_EQ(resolveImageUser("app:staff", passwd, group)->gid, 50);
  EXPECT_EQ(resolveImageUser("1000:7", passwd, group)->gid, 7);
  auto unknown = resolveImageUser("ghost", passwd, group);
  ASSERT_FALSE(unknown.isOk());
  EXPECT_NE(unknown.status().message().find("ghost"), std::string::npos);
  EXPECT_FALSE(resolveImageUser("app:nogroup", passwd, group).isOk());
}

// ---- bundle decisions ----------------------------------------------------------------------

TEST(OciBundleTest, ArgsComeFromRunOrTheImage) {
  model::ServiceSpec spec;
  spec.name = "web";
  ImageConfig image;
  image.entrypoint = {"/app"};
  image.cmd = {"--port", "${PORT}"};
  auto from_image = processArgs(spec, image, {{"PORT", "8080"}});
  ASSERT_TRUE(from_image.isOk());
  EXPECT_EQ(*from_image, (std::vector<std::string>{"/app", "--port", "${PORT}"}));
  spec.run = {"serve", "--port=${PORT}"};
  EXPECT_EQ(*processArgs(spec, image, {{"PORT", "8080"}}),
            (std::vector<std::string>{"serve", "--port=8080"}));
  spec.run = {"serve", "${NOPE}"};
  EXPECT_FALSE(processArgs(spec, image, {}).isOk());
  spec.run.clear();
  EXPECT_FALSE(processArgs(spec, ImageConfig{}, {}).isOk());
}

TEST(OciBundleTest, TaskEnvOverridesImageEnv) {
  auto env = mergeEnv({"PATH=/bin", "A=image", "B=x=y", "bad"}, {{"A", "task"}, {"PORT", "1"}});
  EXPECT_EQ(env["PATH"], "/bin");
  EXPECT_EQ(env["A"], "task");
  EXPECT_EQ(env["B"], "x=y");
  EXPECT_EQ(env["PORT"], "1");
  EXPECT_EQ(env.count("bad"), 0u);
}

TEST(OciBundleTest, UserIsTheNodesChoiceElseTheImagesButNeverRoot) {
  const char* passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n";
  TaskConfig config;
  config.uid = 61000;
  config.gid = 61001;
  config.groups = {5};
  ImageConfig image;
  image.user = "app";
  auto node = chooseUser(config, image, passwd, "");
  ASSERT_TRUE(node.isOk());
  EXPECT_EQ(node->uid, 61000);
  EXPECT_EQ(node->gid, 61001);
  EXPECT_EQ(node->additional_gids, std::vector<uint32_t>{5});

  config.uid = config.gid = -1;
  EXPECT_EQ(chooseUser(config, image, passwd, "")->uid, 1000);
  image.user = "root";
  EXPECT_EQ(chooseUser(config, image, passwd, "")->uid, kNobody);
  image.user = "0:0";
  EXPECT_EQ(chooseUser(config, image, passwd, "")->gid, kNobody);
  image.user = "";
  EXPECT_EQ(chooseUser(config, image, passwd, "")->uid, kNobody);
  config.spec.user = "app";
  EXPECT_EQ(chooseUser(config, image, passwd, "")->uid, 1000);
  config.spec.user = "ghost";
  EXPECT_FALSE(chooseUser(config, image, passwd, "").isOk());
}

TEST(OciBundleTest, RuntimeConfigLocksTheContainerDown) {
  BundleSpec s;
  s.hostname = "web-1";
  s.rootfs = "/cache/abc/rootfs";
  s.args = {"sh", "-c", "true"};
  s.env = {"PORT=1"};
  s.uid = 61000;
  s.gid = 61000;
  s.netns_path = "/var/run/netns/baton-web-1";
  s.cgroups_path = "/baton-oci/web-1";
  s.memory_bytes = 64 << 20;
  s.cpu_cores = 0.5;
  s.cpu_limit_cores = 1.5;
  s.pids_max = 64;
  s.nofile = 4096;
  json c = json::parse(runtimeConfig(s));
  EXPECT_EQ(c["root"]["path"], "/cache/abc/rootfs");
  EXPECT_EQ(c["root"]["readonly"], true);
  EXPECT_EQ(c["process"]["noNewPrivileges"], true);
  EXPECT_EQ(c["process"]["terminal"], false);
  EXPECT_EQ(c["process"]["user"]["uid"], 61000);
  EXPECT_EQ(c["process"]["cwd"], "/");
  for (const char* set : {"bounding", "effective", "inheritable", "permitted", "ambient"}) {
    EXPECT_TRUE(c["process"]["capabilities"][set].empty()) << set;
  }
  EXPECT_EQ(c["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
  EXPECT_EQ(c["process"]["rlimits"][0]["soft"], 4096);
  EXPECT_EQ(c["process"]["rlimits"][0]["hard"], 4096);
  const json& r = c["linux"]["resources"];
  EXPECT_EQ(r["memory"]["limit"], 64 << 20);
  EXPECT_EQ(r["memory"]["swap"], 64 << 20);
  EXPECT_EQ(r["cpu"]["shares"], 512);
  EXPECT_EQ(r["cpu"]["quota"], 150000);
  EXPECT_EQ(r["cpu"]["period"], 100000);
  EXPECT_EQ(r["pids"]["limit"], 64);
  EXPECT_EQ(c["linux"]["cgroupsPath"], "/baton-oci/web-1");
  bool netns = false;
  for (const auto& ns : c["linux"]["namespaces"]) {
    if (ns["type"] == "network") netns = ns["path"] == "/var/run/netns/baton-web-1";
  }
  EXPECT_TRUE(netns);
  std::map<std::string, json> mounts;
  for (const auto& m : c["mounts"]) mounts[m["destination"]] = m;
  EXPECT_EQ(mounts["/tmp"]["type"], "tmpfs");
  EXPECT_EQ(mounts["/proc"]["type"], "proc");
  EXPECT_EQ(mounts["/dev/pts"]["type"], "devpts");
  EXPECT_EQ(mounts["/dev/shm"]["type"], "tmpfs");
  EXPECT_EQ(mounts["/dev/mqueue"]["type"], "mqueue");
  auto sys = mounts["/sys"]["options"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(sys.begin(), sys.end(), "ro"), sys.end());
  auto masked = c["linux"]["maskedPaths"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(masked.begin(), masked.end(), "/proc/kcore"), masked.end());

  BundleSpec bare;
  json b = json::parse(runtimeConfig(bare));
  EXPECT_FALSE(b["linux"]["resources"].contains("memory"));
  EXPECT_FALSE(b["linux"]["resources"].contains("pids"));
  EXPECT_EQ(b["process"]["rlimits"][0]["soft"], kDefaultNofile);
}

// ---- rootfs lookups ------------------------------------------------------------------------

TEST(OciRootfsTest, LookupsFollowSymlinksInsideTheRootOnly) {
  TempDir tmp;
  fs::path root = tmp.path() / "rootfs";
  fs::create_directories(root / "bin");
  fs::create_directories(root / "usr/bin");
  fs::create_directories(tmp.path() / "outside");
  { std::ofstream(root / "bin/busybox") << "x"; }
  fs::permissions(root / "bin/busybox", fs::perms::owner_all);
  fs::create_symlink("busybox", root / "bin/sh");
  fs::create_symlink("/bin/busybox", root / "usr/bin/env");
  // Points at the host's /tmp/.../outside from the host's view; inside the root it is missing.
  fs::create_symlink("../../../../../../outside/prog", root / "usr/bin/escape");
  { std::ofstream(tmp.path() / "outside/prog") << "x"; }
  fs::permissions(tmp.path() / "outside/prog", fs::perms::owner_all);
  fs::create_symlink("loop2", root / "bin/loop1");
  fs::create_symlink("loop1", root / "bin/loop2");

  EXPECT_EQ(*resolveInRootfs(root, "/bin/sh"), root / "bin/busybox");
  EXPECT_EQ(*resolveInRootfs(root, "/usr/bin/env"), root / "bin/busybox");
  EXPECT_FALSE(resolveInRootfs(root, "/usr/bin/escape").isOk());
  EXPECT_FALSE(resolveInRootfs(root, "/bin/loop1").isOk());

  std::map<std::string, std::string> env = {{"PATH", "/usr/bin:/bin"}};
  EXPECT_EQ(*findProgram(root, "sh", env, "/"), "/bin/sh");
  EXPECT_EQ(*findProgram(root, "env", env, "/"), "/usr/bin/env");
  EXPECT_EQ(*findProgram(root, "/bin/sh", env, "/"), "/bin/sh");
  EXPECT_EQ(*findProgram(root, "./sh", env, "/bin"), "./sh");
  auto missing = findProgram(root, "nosuch", env, "/");
  ASSERT_FALSE(missing.isOk());
  EXPECT_NE(missing.status().message().find("no such file or directory"), std::string::npos);
  EXPECT_FALSE(findProgram(root, "escape", env, "/").isOk());
  EXPECT_FALSE(findProgram(root, "usr", {{"PATH", "/"}}, "/").isOk());  // a directory
}

// ---- layers --------------------------------------------------------------------------------

class LayerTest : public ::testing::Test {
 protected:
  Status apply(const std::vector<t::TarEntry>& entries, bool gzip = true) {
    fs::path layer = tmp_.path() / ("layer" + std::to_string(n_++));
    std::ofstream(layer, std::ios::binary) << t::makeTar(entries, gzip);
    return applyLayer(root(), layer);
  }
  fs::path root() {
    fs::create_directories(tmp_.path() / "rootfs");
    return tmp_.path() / "rootfs";
  }
  TempDir tmp_;
  int n_ = 0;
};

TEST_F(LayerTest, ExtractsFilesDirsLinks) {
  ASSERT_TRUE(apply({t::dir("etc"), t::file("etc/hosts", "127.0.0.1 localhost\n"),
                     t::file("bin/app", "#!", 0755), t::symlink("bin/sh", "app"),
                     t::hardlink("bin/app2", "bin/app")},
                    false)
                  .isOk());
  EXPECT_EQ(readFile(root() / "etc/hosts"), "127.0.0.1 localhost\n");
  EXPECT_EQ(fs::read_symlink(root() / "bin/sh"), "app");
  struct stat a {
  }, b{};
  ::stat((root() / "bin/app").c_str(), &a);
  ::stat((root() / "bin/app2").c_str(), &b);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_mode & 0777, 0755u);
}

TEST_F(LayerTest, WhiteoutsHideLowerLayersOnly) {
  ASSERT_TRUE(apply({t::file("etc/a", "1"), t::file("etc/b", "2"), t::file("opq/old", "3"),
                     t::dir("opq/olddir"), t::file("opq/olddir/x", "4")})
                  .isOk());
  // The whiteouts come after this layer's own files of the same name: those stay.
  ASSERT_TRUE(
      apply({t::file("opq/new", "5"), t::file("etc/a", "again"), t::file("etc/.wh.a", ""),
             t::file("etc/.wh.b", ""), t::file("opq/.wh..wh..opq", ""), t::file("gone/.wh.x", "")})
          .isOk());
  EXPECT_EQ(readFile(root() / "etc/a"), "again");
  EXPECT_FALSE(fs::exists(root() / "etc/b"));
  EXPECT_FALSE(fs::exists(root() / "etc/.wh.b"));
  EXPECT_TRUE(fs::exists(root() / "opq/new"));
  EXPECT_FALSE(fs::exists(root() / "opq/old"));
  EXPECT_FALSE(fs::exists(root() / "opq/olddir"));
  EXPECT_FALSE(fs::exists(root() / "opq/.wh..wh..opq"));
}

TEST_F(LayerTest, ReplacesAcrossTypes) {
  ASSERT_TRUE(apply({t::dir("x"), t::file("x/inner", "1"), t::file("y", "file")}).isOk());
  ASSERT_TRUE(apply({t::file("x", "now a file"), t::dir("y")}).isOk());
  EXPECT_EQ(readFile(root() / "x"), "now a file");
  EXPECT_TRUE(fs::is_directory(root() / "y"));
}

TEST_F(LayerTest, RefusesEntriesThatEscapeTheRoot) {
  fs::path outside = tmp_.path() / "outside";
  fs::create_directories(outside);

  Status dotdot = apply({t::file("../outside/pwned", "x")});
  EXPECT_FALSE(dotdot.isOk());
  EXPECT_NE(dotdot.message().find(".."), std::string::npos) << dotdot.message();

  Status absolute = apply({t::file("/tmp/pwned", "x")});
  EXPECT_FALSE(absolute.isOk());
  EXPECT_NE(absolute.message().find("absolute"), std::string::npos) << absolute.message();

  // A symlink to a directory outside, then a file through it.
  Status through = apply({t::symlink("link", outside.string()), t::file("link/pwned", "x")});
  EXPECT_FALSE(through.isOk());
  EXPECT_NE(through.message().find("symlink"), std::string::npos) << through.message();
  // Also when the symlink came from a lower layer.
  Status lower = apply({t::file("link/pwned2", "x")});
  EXPECT_FALSE(lower.isOk());
  Status hard = apply({t::hardlink("h", "../outside/secret")});
  EXPECT_FALSE(hard.isOk());
  Status whiteout_through = apply({t::file("link/.wh.keep", "")});
  EXPECT_FALSE(whiteout_through.isOk());

  EXPECT_TRUE(fs::is_empty(outside)) << "something was written outside the root";
  EXPECT_FALSE(fs::exists("/tmp/pwned"));
}

// ---- the store -----------------------------------------------------------------------------

TEST(ImageStoreTest, UnpacksAnArchiveOncePerDigest) {
  TempDir tmp;
  std::string layer1 = t::makeTar({t::file("bin/app", "v1", 0755), t::file("etc/old", "x")});
  std::string layer2 = t::makeTar({t::file("etc/.wh.old", ""), t::file("etc/new", "y")});
  std::string digest = t::writeLayout(tmp.path() / "layout", {layer1, layer2},
                                      {.cmd = {"/bin/app"}, .working_dir = "/srv"});
  t::writeArchive(tmp.path() / "layout", tmp.path() / "app.tar");

  ImageStore store(tmp.path() / "cache");
  std::string ref = "oci-archive:" + (tmp.path() / "app.tar").string();
  auto image = store.get(ref);
  ASSERT_TRUE(image.isOk()) << image.status().toString();
  EXPECT_EQ(image->manifest_digest, digest);
  EXPECT_EQ(image->rootfs, tmp.path() / "cache" / digest.substr(7) / "rootfs");
  EXPECT_EQ(readFile(image->rootfs / "bin/app"), "v1");
  EXPECT_FALSE(fs::exists(image->rootfs / "etc/old"));
  EXPECT_TRUE(fs::exists(image->rootfs / "etc/new"));
  for (const char* d : {"proc", "dev", "sys", "tmp"}) {
    EXPECT_TRUE(fs::is_directory(image->rootfs / d)) << d;
  }
  struct stat tmp_dir {};
  ::stat((image->rootfs / "tmp").c_str(), &tmp_dir);
  EXPECT_EQ(tmp_dir.st_mode & 07777, 01777u);
  EXPECT_EQ(image->config.cmd, std::vector<std::string>{"/bin/app"});
  EXPECT_EQ(image->config.working_dir, "/srv");
  auto ready = store.prepare(ref);
  ASSERT_TRUE(ready.isOk());
  EXPECT_TRUE(ready->ready);

  // The same image through its layout and through a second store: no second unpacking.
  struct stat before {};
  ::stat(image->rootfs.c_str(), &before);
  ::unlink((image->rootfs / "etc/new").c_str());  // a marker: a fresh unpack would restore it
  ImageStore again(tmp.path() / "cache");
  auto layout = again.get("oci:" + (tmp.path() / "layout").string());
  ASSERT_TRUE(layout.isOk()) << layout.status().toString();
  EXPECT_EQ(layout->rootfs, image->rootfs);
  EXPECT_FALSE(fs::exists(layout->rootfs / "etc/new"));
  for (const auto& e : fs::directory_iterator(tmp.path() / "cache")) {
    EXPECT_NE(e.path().filename().string().rfind("tmp-", 0), 0u) << e.path();
  }
}

TEST(ImageStoreTest, PrepareRunsInTheBackgroundAndReportsErrorsOnce) {
  TempDir tmp;
  ImageStore store(tmp.path() / "cache");
  std::string missing = "oci-archive:" + (tmp.path() / "nope.tar").string();
  Result<Preparation> p = store.prepare(missing);
  ASSERT_TRUE(p.isOk());
  if (p->ready == false) {
    EXPECT_NE(p->progress.find("unpacking image"), std::string::npos) << p->progress;
  }
  auto got = store.get(missing);  // waits for the job; the failure is reported here...
  ASSERT_FALSE(got.isOk());
  EXPECT_EQ(got.status().message(), "image " + missing + ": no such file");
  // ...and not again: a new attempt starts.
  auto next = store.prepare(missing);
  ASSERT_TRUE(next.isOk() || next.status().message().find("no such file") != std::string::npos);

  std::string layer = t::makeTar({t::file("x", "1")});
  t::writeLayout(tmp.path() / "arm", {layer}, {.architecture = "s390x"});
  auto wrong = store.get("oci:" + (tmp.path() / "arm").string());
  ASSERT_FALSE(wrong.isOk());
  EXPECT_NE(wrong.status().message().find("has no linux/" + hostArchitecture() + " manifest"),
            std::string::npos)
      << wrong.status().message();

  EXPECT_FALSE(store.prepare("registry.example/app:1").isOk());
}

TEST(ImageStoreTest, RefusesBlobsThatDoNotMatchTheirDigest) {
  TempDir tmp;
  std::string layer = t::makeTar({t::file("x", "1")});
  std::string digest = t::writeLayout(tmp.path() / "layout", {layer});
  std::string layer_hex = t::sha256Hex(layer);
  std::ofstream(tmp.path() / "layout/blobs/sha256" / layer_hex, std::ios::binary)
      << t::makeTar({t::file("x", "tampered")});
  ImageStore store(tmp.path() / "cache");
  auto image = store.get("oci:" + (tmp.path() / "layout").string());
  ASSERT_FALSE(image.isOk());
  EXPECT_NE(image.status().message().find("does not match its digest"), std::string::npos)
      << image.status().message();
  EXPECT_FALSE(fs::exists(tmp.path() / "cache" / digest.substr(7)));
}

TEST(ImageStoreTest, AnImageWhoseSourceChangesIsUnpackedAgain) {
  TempDir tmp;
  fs::path tar = tmp.path() / "app.tar";
  t::writeLayout(tmp.path() / "v1", {t::makeTar({t::file("v", "1")})});
  t::writeArchive(tmp.path() / "v1", tar);
  ImageStore store(tmp.path() / "cache");
  std::string ref = "oci-archive:" + tar.string();
  auto first = store.get(ref);
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  t::writeLayout(tmp.path() / "v2", {t::makeTar({t::file("v", "2")})});
  fs::remove(tar);
  t::writeArchive(tmp.path() / "v2", tar);
  auto second = store.get(ref);
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  EXPECT_NE(second->manifest_digest, first->manifest_digest);
  EXPECT_EQ(readFile(second->rootfs / "v"), "2");
}

}  // namespace
}  // namespace baton::drivers::oci
