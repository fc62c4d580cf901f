// Orbax / OCDBT / zarr readers against fixtures written by the real orbax-checkpoint and tensorstore
// (tools/fixtures_orbax.py): every array and every OCDBT key is compared bit-exactly through the
// checksums the Python side recorded. Then hostile inputs, crafted here byte by byte, must give one
// clean line naming the file and the problem.
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/orbax/ocdbt.h"
#include "formats/orbax/orbax.h"
#include "formats/orbax/zarr.h"
#include "support/test_support.h"

namespace gemma {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::string_literals;

std::string fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001B3ull;
  }
  return fmt::format("{:016x}", h);
}

json expected(const std::string& fixture) {
  std::ifstream in(test::fixture("orbax/expected/" + fixture + ".json"));
  return json::parse(in);
}

std::string dtype_string(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    case DType::I8: return "int8";
    case DType::I32: return "int32";
    case DType::F64: return "float64";
    default: return "?";
  }
}

void expect_arrays(const TensorSet& ts, const json& exp, const std::string& what) {
  ASSERT_FALSE(exp.empty()) << what << ": no expected arrays";  // else 0 == 0 would pass
  ASSERT_EQ(ts.size(), exp.size()) << what;
  for (const auto& [name, e] : exp.items()) {
    const Tensor* t = ts.find(name);
    ASSERT_NE(t, nullptr) << what << ": missing " << name;
    EXPECT_EQ(dtype_string(t->dtype), e["dtype"].get<std::string>()) << what << " " << name;
    EXPECT_EQ(t->shape, e["shape"].get<std::vector<int64_t>>()) << what << " " << name;
    EXPECT_EQ(fnv1a64(t->data, t->nbytes), e["fnv1a64"].get<std::string>()) << what << " " << name;
  }
}

void expect_keys(const OcdbtDatabase& db, const json& exp, const std::string& what) {
  ASSERT_FALSE(exp.empty()) << what << ": no expected keys";
  EXPECT_EQ(db.size(), exp.size()) << what;
  for (const auto& [key, h] : exp.items()) {
    auto v = db.read(key);
    ASSERT_TRUE(v.ok()) << what << ": " << v.error().message;
    EXPECT_EQ(fnv1a64(v->data(), v->size()), h.get<std::string>()) << what << " key " << key;
  }
}

// All files of a directory, for in-memory variants.
std::map<std::string, std::string> load_files(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    files[fs::relative(e.path(), dir).generic_string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return files;
}

const char* kFixtures[] = {"ocdbt_zarr2", "zarr2_dirs", "ocdbt_zarr3", "zarr3_dirs", "ts_tree"};

TEST(Orbax, ReadsEveryFixtureBitExactly) {
  for (const char* f : kFixtures) {
    TensorSet ts;
    Status st = read_orbax(test::fixture(std::string("orbax/") + f), ts);
    ASSERT_TRUE(st.ok()) << f << ": " << st.error().message;
    expect_arrays(ts, expected(f)["arrays"], f);
  }
}

TEST(Orbax, ReadsFromMemoryFileSet) {
  for (const char* f : kFixtures) {
    TensorSet ts;
    auto files = memory_file_set(f, load_files(test::fixture(std::string("orbax/") + f)));
    Status st = read_orbax(files, ts);
    ASSERT_TRUE(st.ok()) << f << ": " << st.error().message;
    expect_arrays(ts, expected(f)["arrays"], f);
  }
}

TEST(Orbax, DetectsLayouts) {
  auto a = OrbaxCheckpoint::open(test::fixture("orbax/ocdbt_zarr2"));
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ((*a)->layout(), "OCDBT (root manifest)");
  auto b = OrbaxCheckpoint::open(test::fixture("orbax/zarr3_dirs"));
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ((*b)->layout(), "zarr directories");
  ASSERT_NE((*b)->find("transformer/layer_0/attn/q_einsum.w"), nullptr);
  EXPECT_EQ((*b)->find("transformer/layer_0/attn/q_einsum.w")->meta.zarr_format, 3);
}

TEST(Orbax, OcdbtKeysMatchTensorstore) {
  for (const char* f : {"ocdbt_zarr2", "ocdbt_zarr3", "ts_tree"}) {
    auto db = OcdbtDatabase::open(test::fixture(std::string("orbax/") + f));
    ASSERT_TRUE(db.ok()) << f << ": " << db.error().message;
    expect_keys(**db, expected(f)["keys"], f);
  }
  for (const char* f : {"ocdbt_zarr2", "ocdbt_zarr3"}) {
    auto db = OcdbtDatabase::open(test::fixture(std::string("orbax/") + f + "/ocdbt.process_0"));
    ASSERT_TRUE(db.ok()) << f << ": " << db.error().message;
    expect_keys(**db, expected(f)["process_keys"], std::string(f) + " process 0");
  }
}

TEST(Orbax, TsTreeHasInteriorNodesAndNumberedManifests) {
  auto db = OcdbtDatabase::open(test::fixture("orbax/ts_tree"));
  ASSERT_TRUE(db.ok()) << db.error().message;
  EXPECT_GT((*db)->manifest().versions.back().root_height, 1);
  EXPECT_GT((*db)->manifest().n_version_tree_nodes, 0u);
  EXPECT_EQ((*db)->manifest().config.compression, 0u);
}

TEST(Orbax, PerProcessDatabasesWithoutRootManifest) {
  for (const char* f : {"ocdbt_zarr2", "ocdbt_zarr3"}) {
    auto files = load_files(test::fixture(std::string("orbax/") + f));
    for (auto it = files.begin(); it != files.end();) {
      if (it->first == "manifest.ocdbt" || it->first.rfind("d/", 0) == 0) it = files.erase(it);
      else ++it;
    }
    auto set = memory_file_set(f, std::move(files));
    auto c = OrbaxCheckpoint::open(set);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ((*c)->layout(), "OCDBT (1 per-process database)");
    TensorSet ts;
    Status st = read_orbax(set, ts);
    ASSERT_TRUE(st.ok()) << st.error().message;
    expect_arrays(ts, expected(f)["arrays"], f);
  }
}

TEST(Orbax, SelectsArrays) {
  TensorSet ts;
  OrbaxReadOptions opt;
  opt.select = [](const std::string& n) { return n.find("q_einsum") != std::string::npos; };
  Status st = read_orbax(disk_file_set(test::fixture("orbax/ocdbt_zarr2")), ts, opt);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(ts.size(), 1u);
}

// ---- hostile inputs -------------------------------------------------------------------------

void expect_error(const Status& st, std::initializer_list<std::string> needles) {
  ASSERT_FALSE(st.ok()) << "expected an error";
  for (const auto& n : needles) EXPECT_NE(st.error().message.find(n), std::string::npos) << st.error().message;
  EXPECT_EQ(st.error().message.find('\n'), std::string::npos) << "errors are one line";
}

template <typename T>
Status status_of(const Result<T>& r) {
  return r.ok() ? Status() : Status(r.error());
}

Status read_set(std::map<std::string, std::string> files) {
  TensorSet ts;
  OrbaxReadOptions opt;
  opt.max_array_bytes = 1 << 20;
  return read_orbax(memory_file_set("ckpt", std::move(files)), ts, opt);
}

std::string varint(uint64_t v) {
  std::string s;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    s += static_cast<char>(v ? b | 0x80 : b);
  } while (v);
  return s;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

// An uncompressed OCDBT object: magic (big-endian), length, version 0, compression 0, body, CRC-32C.
std::string envelope(uint32_t magic, const std::string& body) {
  std::string s = {static_cast<char>(magic >> 24), static_cast<char>(magic >> 16), static_cast<char>(magic >> 8),
                   static_cast<char>(magic)};
  s += le64(4 + 8 + 2 + body.size() + 4);
  s += varint(0) + varint(0) + body;
  const uint32_t crc = crc32c({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  s.append(reinterpret_cast<const char*>(&crc), 4);
  return s;
}

std::string file_table(const std::vector<std::string>& paths) {  // no prefix sharing, base path empty
  std::string s = varint(paths.size());
  for (size_t i = 1; i < paths.size(); ++i) s += varint(0);
  for (const auto& p : paths) s += varint(p.size());
  for (size_t i = 0; i < paths.size(); ++i) s += varint(0);
  for (const auto& p : paths) s += p;
  return s;
}

constexpr uint32_t kManifest = 0x0cdb3a2a, kNode = 0x0cdb20de;

std::string manifest(uint64_t offset, uint64_t length, uint8_t height, const std::string& file = "d/n") {
  std::string b(16, 'u');
  b += '\0';                           // manifest_kind single
  b += varint(1024) + varint(100000);  // max inline, max node
  b += '\x04';                         // version_tree_arity_log2
  b += varint(0);                      // no compression
  b += file_table({file});
  b += varint(1) + varint(1) + static_cast<char>(height) + varint(0) + varint(offset) + varint(length);
  b += varint(1) + varint(0) + varint(0) + le64(0);
  b += varint(0);  // no version-tree nodes
  return envelope(kManifest, b);
}

// A leaf with inline values; keys must be increasing.
std::string leaf(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::string b = "\0"s;  // height 0
  b += file_table({});
  b += varint(kv.size());
  for (size_t i = 1; i < kv.size(); ++i) b += varint(0);
  for (const auto& [k, v] : kv) b += varint(k.size());
  for (const auto& [k, v] : kv) b += k;
  for (const auto& [k, v] : kv) b += varint(v.size());
  for (size_t i = 0; i < kv.size(); ++i) b += '\0';
  for (const auto& [k, v] : kv) b += v;
  return envelope(kNode, b);
}

struct Child {
  std::string key;
  size_t subtree_prefix;
  uint64_t offset, length;
};
std::string interior(uint8_t height, const std::vector<Child>& cs) {
  std::string b(1, static_cast<char>(height));
  b += file_table({"d/n"});
  b += varint(cs.size());
  for (size_t i = 1; i < cs.size(); ++i) b += varint(0);
  for (const auto& c : cs) b += varint(c.key.size());
  for (const auto& c : cs) b += varint(c.subtree_prefix);
  for (const auto& c : cs) b += c.key;
  for (size_t i = 0; i < cs.size(); ++i) b += varint(0);  // file id
  for (const auto& c : cs) b += varint(c.offset);
  for (const auto& c : cs) b += varint(c.length);
  for (size_t i = 0; i < 3 * cs.size(); ++i) b += varint(1);  // statistics
  return envelope(kNode, b);
}

const std::string kZarray =
    R"({"zarr_format":2,"shape":[4],"chunks":[4],"dtype":"<f4","compressor":null,"fill_value":null})";

TEST(OrbaxHostile, CraftedTreeWithInheritedPrefixesReads) {
  // Root (height 1) with children keyed "a/x..." whose subtree prefix "a/x" is omitted in the leaves.
  const std::string chunk(16, '\x01');
  std::string l1 = leaf({{"/.zarray", kZarray}, {"/0", chunk}});
  std::string l2 = leaf({{"tra", "v"}});
  std::string root = interior(1, {{"a/x/.zarray", 3, 0, l1.size()}, {"a/xtra", 3, l1.size(), l2.size()}});
  const std::string data = l1 + l2 + root;
  auto files = std::map<std::string, std::string>{{"manifest.ocdbt", manifest(l1.size() + l2.size(), root.size(), 1)},
                                                  {"d/n", data}};
  auto db = OcdbtDatabase::open(memory_file_set("ckpt", files), "");
  ASSERT_TRUE(db.ok()) << db.error().message;
  EXPECT_EQ((*db)->keys(), (std::vector<std::string>{"a/x/.zarray", "a/x/0", "a/xtra"}));
  TensorSet ts;
  Status st = read_orbax(memory_file_set("ckpt", files), ts);
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_NE(ts.find("a/x"), nullptr);
  EXPECT_EQ(ts.find("a/x")->shape, std::vector<int64_t>{4});
}

TEST(OrbaxHostile, ManifestCorruption) {
  const auto good = load_files(test::fixture("orbax/ocdbt_zarr2"));
  {
    auto f = good;
    f["manifest.ocdbt"].resize(f["manifest.ocdbt"].size() / 2);
    expect_error(read_set(f), {"ckpt/manifest.ocdbt", "truncated"});
    f["manifest.ocdbt"].resize(7);
    expect_error(read_set(f), {"ckpt/manifest.ocdbt", "truncated"});
  }
  {
    auto f = good;
    f["manifest.ocdbt"][0] ^= 0x40;
    expect_error(read_set(f), {"ckpt/manifest.ocdbt", "bad magic"});
  }
  {
    auto f = good;
    f["manifest.ocdbt"][20] ^= 0x01;
    expect_error(read_set(f), {"ckpt/manifest.ocdbt", "CRC-32C mismatch"});
  }
  {
    auto f = good;
    f["ocdbt.process_0/manifest.ocdbt"] = "";  // unused when the root manifest is there
    EXPECT_TRUE(read_set(f).ok());
    f.erase("manifest.ocdbt");
    expect_error(read_set(f), {"ckpt/ocdbt.process_0/manifest.ocdbt"});
  }
}

TEST(OrbaxHostile, DataFileCorruption) {
  auto f = load_files(test::fixture("orbax/ocdbt_zarr2"));
  for (auto& [name, bytes] : f)
    if (name.rfind("d/", 0) == 0) bytes[bytes.size() / 2] ^= 0x10;  // the root's b-tree node
  expect_error(read_set(f), {"ckpt/d/", "CRC-32C mismatch"});
}

TEST(OrbaxHostile, NodeOutsideItsFile) {
  const std::string l = leaf({{"k", "v"}});
  expect_error(read_set({{"manifest.ocdbt", manifest(0, l.size() + 1, 0)}, {"d/n", l}}),
               {"ckpt/d/n", "lies outside the file"});
  expect_error(read_set({{"manifest.ocdbt", manifest(1000, 10, 0)}, {"d/n", l}}), {"ckpt/d/n", "lies outside"});
  expect_error(read_set({{"manifest.ocdbt", manifest(0, l.size(), 0)}}), {"ckpt/d/n", "cannot open"});
  expect_error(read_set({{"manifest.ocdbt", manifest(0, l.size(), 0, "../x")}, {"d/n", l}}),
               {"ckpt", "outside the database directory"});
}

TEST(OrbaxHostile, CycleInTheTree) {
  // An interior node at offset 0 whose only child is itself.
  std::string self = interior(1, {{"a", 0, 0, 0}});
  const size_t n = self.size();
  self = interior(1, {{"a", 0, 0, n}});
  ASSERT_EQ(self.size(), n);
  expect_error(read_set({{"manifest.ocdbt", manifest(0, n, 1)}, {"d/n", self}}), {"ckpt/d/n", "cycle"});
  // Same node claimed at a wrong height: its parent expects 2.
  expect_error(read_set({{"manifest.ocdbt", manifest(0, n, 2)}, {"d/n", self}}), {"ckpt/d/n", "height 1"});
}

TEST(OrbaxHostile, HugeLengths) {
  const std::string l = leaf({{"k", "v"}});
  expect_error(read_set({{"manifest.ocdbt", manifest(0, uint64_t{1} << 62, 0)}, {"d/n", l}}), {"ckpt/d/n", "outside"});
  expect_error(read_set({{"manifest.ocdbt", manifest(UINT64_MAX - 4, 8, 0)}, {"d/n", l}}),
               {"ckpt/manifest.ocdbt", "invalid offset/length"});
  // A leaf claiming an inline value of 2^40 bytes, and a node claiming 2^30 entries.
  std::string b = "\0"s + file_table({}) + varint(1) + varint(1) + "k" + varint(uint64_t{1} << 40) + '\0';
  std::string big = envelope(kNode, b);
  expect_error(read_set({{"manifest.ocdbt", manifest(0, big.size(), 0)}, {"d/n", big}}), {"ckpt/d/n", "inline value"});
  b = "\0"s + file_table({}) + varint(uint64_t{1} << 30);
  big = envelope(kNode, b);
  expect_error(read_set({{"manifest.ocdbt", manifest(0, big.size(), 0)}, {"d/n", big}}), {"ckpt/d/n", "entries"});
  b = "\0"s + varint(uint64_t{1} << 50);
  big = envelope(kNode, b);
  expect_error(read_set({{"manifest.ocdbt", manifest(0, big.size(), 0)}, {"d/n", big}}),
               {"ckpt/d/n", "data-file table"});
  // zarr metadata with an absurd shape.
  expect_error(read_set({{"w/.zarray",
                          R"({"zarr_format":2,"shape":[1099511627776,1099511627776],"chunks":[1,1],"dtype":"<f4"})"}}),
               {"ckpt/w/.zarray", "implausibly large"});
  expect_error(read_set({{"w/.zarray", R"({"zarr_format":2,"shape":[1048576,1048576],"chunks":[1,1],"dtype":"<f4"})"}}),
               {"ckpt", "exceeds the"});
}

TEST(OrbaxHostile, ZarrChunkOfWrongSize) {
  const std::string zst_meta =
      R"({"zarr_format":2,"shape":[4],"chunks":[4],"dtype":"<f4","compressor":{"id":"zstd","level":1},"fill_value":null})";
  // zstd frames of 8 and 32 zero bytes ("\x28\xb5\x2f\xfd" + header + raw block).
  auto frame = [](size_t n) {
    std::string s = "\x28\xb5\x2f\xfd"s + '\x20' + static_cast<char>(n);      // single segment, 1-byte content size
    const uint32_t block = 1u | (0u << 1) | (static_cast<uint32_t>(n) << 3);  // last, raw
    s += std::string(reinterpret_cast<const char*>(&block), 3) + std::string(n, '\0');
    return s;
  };
  EXPECT_TRUE(read_set({{"w/.zarray", zst_meta}, {"w/0", frame(16)}}).ok());
  expect_error(read_set({{"w/.zarray", zst_meta}, {"w/0", frame(8)}}),
               {"ckpt/w", "/0", "decompresses to 8 bytes, expected 16"});
  expect_error(read_set({{"w/.zarray", zst_meta}, {"w/0", frame(32)}}), {"ckpt/w", "more than 16 bytes"});
  expect_error(read_set({{"w/.zarray", zst_meta}, {"w/0", "garbage"}}), {"ckpt/w", "corrupt zstd data"});
  expect_error(read_set({{"w/.zarray", kZarray}, {"w/0", std::string(12, 'x')}}),
               {"ckpt/w", "holds 12 bytes, expected 16"});
  expect_error(read_set({{"w/.zarray", R"({"zarr_format":2,"shape":[4],"chunks":[4],"dtype":"|u1"})"}}),
               {"ckpt/w/.zarray", "not supported"});
  expect_error(read_set({{"w/.zarray", "{"}}), {"ckpt/w/.zarray", "not a JSON object"});
}

TEST(OrbaxHostile, ShardIndexCorruption) {
  // zarr3 from the fixture: flip a bit in the shard index and check the crc32c catches it.
  auto f = load_files(test::fixture("orbax/zarr3_dirs"));
  std::string& shard = f["transformer/final_norm.scale/c/0"];
  ASSERT_GT(shard.size(), 10u);
  shard[shard.size() - 6] ^= 0x01;
  expect_error(read_set(f), {"ckpt/transformer/final_norm.scale", "crc32c"});
  shard.resize(3);
  expect_error(read_set(f), {"ckpt/transformer/final_norm.scale", "smaller than its"});
}

TEST(OrbaxHostile, EmptyDirectoryIsNotACheckpoint) {
  expect_error(read_set({{"readme.txt", "hello"}}), {"ckpt", "not an Orbax checkpoint"});
}

TEST(Crc32c, KnownVector) {
  const std::string s = "123456789";
  EXPECT_EQ(crc32c({reinterpret_cast<const uint8_t*>(s.data()), s.size()}), 0xE3069283u);
}

}  // namespace
}  // namespace gemma
