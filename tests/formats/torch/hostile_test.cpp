// Hostile and malformed pickles and archives: each must be a clean error that names the problem
// (and, for the pickle, the opcode and byte offset), never a crash or an out-of-bounds read.
#include <cstring>

#include <gtest/gtest.h>

#include "builders.h"
#include "formats/torch/pickle.h"
#include "formats/torch/torch_checkpoint.h"
#include "formats/torch/zip_reader.h"

namespace gemma {
namespace {

using test::Pk;

// A string literal with embedded NULs kept.
template <size_t N>
std::string B(const char (&s)[N]) {
  return std::string(s, N - 1);
}

Result<Pickle> run(const std::string& bytes, PickleLimits limits = {}) {
  return Pickle::parse({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, "t.pkl", limits);
}

Status load(const std::string& zip) {
  TensorSet ts;
  return parse_torch_checkpoint({reinterpret_cast<const uint8_t*>(zip.data()), zip.size()}, "t.pt", nullptr, ts);
}

void expect_error(const Status& s, const std::string& needle) {
  ASSERT_FALSE(s.ok()) << "expected an error containing: " << needle;
  EXPECT_NE(s.error().message.find(needle), std::string::npos) << s.error().message;
}
template <typename T>
void expect_error(const Result<T>& r, const std::string& needle) {
  ASSERT_FALSE(r.ok()) << "expected an error containing: " << needle;
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

// A valid one-tensor archive: {'w': float32[4]} with storage "0".
std::string valid_pickle() {
  return Pk().op('}').str("w").tensor("FloatStorage", "0", 4, 0, {4}, {1}).op('s').stop().b;
}

TEST(TorchPickle, ValuesOfEveryAllowedOpcode) {
  // [None, True, False, 255, 65535, -2, LONG1 0, LONG1 -1, LONG1 2^40, LONG1 -2^63, 1.5, 'a', 'bc', (1,)]
  std::string b = B("\x80\x02]q\x00(N\x88\x89K\xffM\xff\xffJ\xfe\xff\xff\xff");
  b += std::string("\x8a\x00", 2) + "\x8a\x01\xff" + std::string("\x8a\x06\x00\x00\x00\x00\x00\x01", 8) +
       std::string("\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80", 10);
  b += std::string("G\x3f\xf8\x00\x00\x00\x00\x00\x00", 9) + "U\x01" + "a" + std::string("T\x02\x00\x00\x00", 5) +
       "bc" + "K\x01\x85" + "e.";
  auto p = run(b);
  ASSERT_TRUE(p.ok()) << p.error().message;
  const PickleValue& l = p->root();
  ASSERT_EQ(l.kind, PickleKind::kList);
  ASSERT_EQ(l.items.size(), 14u);
  EXPECT_EQ(l.items[0]->kind, PickleKind::kNone);
  EXPECT_TRUE(l.items[1]->b);
  EXPECT_FALSE(l.items[2]->b);
  const int64_t ints[] = {255, 65535, -2, 0, -1, int64_t{1} << 40, INT64_MIN};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(l.items[static_cast<size_t>(3 + i)]->i, ints[i]) << i;
  EXPECT_EQ(l.items[10]->f, 1.5);
  EXPECT_EQ(l.items[11]->s, "a");
  EXPECT_EQ(l.items[12]->s, "bc");
  EXPECT_EQ(l.items[13]->kind, PickleKind::kTuple);
}

TEST(TorchPickle, Protocol4Opcodes) {
  // FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, BINUNICODE8, NEWOBJ OrderedDict()
  std::string b = std::string("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00", 11);
  b += "\x8c\x0b"
       "collections\x94\x8c\x0bOrderedDict\x94\x93\x94)\x81\x94";
  b += std::string("\x8d\x01\x00\x00\x00\x00\x00\x00\x00k", 10) + B("h\x00s.");
  auto p = run(b);
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_EQ(p->root().kind, PickleKind::kDict);
  ASSERT_NE(p->root().get("k"), nullptr);
  EXPECT_EQ(p->root().get("k")->s, "collections");
}

TEST(TorchPickle, RejectsDangerousGlobals) {
  expect_error(run(Pk().global("os", "system").str("ls").op('\x85').op('R').stop().b),
               "global 'os.system' is not allowed");
  expect_error(run(Pk().global("builtins", "eval").stop().b), "global 'builtins.eval' is not allowed");
  expect_error(run(Pk().global("_codecs", "encode").stop().b), "'_codecs.encode'");
  expect_error(run(Pk().global("torch._utils", "_rebuild_qtensor").stop().b), "_rebuild_qtensor");
  expect_error(run(Pk().global("torch._tensor", "_rebuild_from_type_v2").stop().b), "_rebuild_from_type_v2");
  expect_error(run(Pk().global("torch", "load").stop().b), "'torch.load'");
  // STACK_GLOBAL resolves through the same table.
  expect_error(run(Pk().raw("\x8c\x02os\x8c\x06system\x93").stop().b), "global 'os.system'");
  auto r = run(Pk().global("os", "system").stop().b);
  expect_error(r, "opcode GLOBAL at byte 2");
}

TEST(TorchPickle, RejectsOpcodesOutsideTheSubset) {
  expect_error(run(Pk().raw("cos\nsystem\n").b), "global 'os.system'");
  expect_error(run(Pk().raw("(S'x'\nios\nsystem\n").b), "opcode STRING");
  expect_error(run(Pk().raw("(ios\nsystem\n").b), "opcode INST");
  expect_error(run(Pk().raw("(o").b), "opcode OBJ");
  expect_error(run(Pk().raw("\x82\x01").b), "opcode EXT1");
  expect_error(run(Pk().raw("P0\n").b), "opcode PERSID");
  expect_error(run(Pk().raw("N0").b), "opcode POP");
  expect_error(run(Pk().raw(std::string("\x8b\x01\x00\x00\x00\x01", 6)).b), "opcode LONG4");
  expect_error(run(Pk().raw("\xff").b), "unknown opcode (opcode 0xff at byte 2)");
  expect_error(run(Pk().raw("\x8f").b), "opcode EMPTY_SET");
  expect_error(run(Pk().raw("\x97").b), "opcode NEXT_BUFFER");
  expect_error(run(std::string("\x80\x06N.")), "protocol 6");
}

TEST(TorchPickle, RejectsReduceOnAnythingButTheRebuildFunctions) {
  expect_error(run(Pk().global("torch", "FloatStorage").op(')').op('R').stop().b), "REDUCE on 'torch.FloatStorage'");
  expect_error(run(Pk().str("x").op(')').op('R').stop().b), "REDUCE on a str");
  expect_error(run(Pk().global("collections", "OrderedDict").str("x").op('\x85').op('R').stop().b),
               "OrderedDict called with 1 arguments");
  expect_error(run(Pk().global("torch._utils", "_rebuild_tensor_v2").op(')').op('R').stop().b),
               "_rebuild_tensor_v2 called with 0 arguments");
  expect_error(run(Pk().global("torch._utils", "_rebuild_parameter").op(')').op('R').stop().b),
               "_rebuild_parameter arguments");
  expect_error(run(Pk().global("torch", "FloatStorage").op(')').op('\x81').stop().b), "NEWOBJ other than");
  expect_error(run(Pk().op(']').op('}').op('b').stop().b), "BUILD on a list");
}

TEST(TorchPickle, RejectsStackAndMemoMisuse) {
  expect_error(run(Pk().raw("h\x05").stop().b), "memo slot 5 read before it was written");
  expect_error(run(Pk().raw(std::string("j\x00\x01\x00\x00", 5)).stop().b), "memo slot 256");
  expect_error(run(Pk().op('s').b), "stack underflow");
  expect_error(run(Pk().op('N').op('(').op('R').b), "stack underflow");  // may not pop across a MARK
  expect_error(run(Pk().op('t').b), "no MARK to close");
  expect_error(run(Pk().op('(').op('N').stop().b), "MARK opened at byte 2 is never closed");
  expect_error(run(Pk().op('N').op('N').stop().b), "2 values on the stack");
  expect_error(run(Pk().op('N').b), "without STOP");
  expect_error(run(Pk().op('N').stop().op('N').b), "1 bytes after STOP");
  expect_error(run(Pk().raw("X\xff\xff\xff\x7f").b), "runs past the end");
  expect_error(run(Pk().raw(std::string("\x95\xff\x00\x00\x00\x00\x00\x00\x00", 9)).b), "frame of 255 bytes");
  expect_error(run(Pk().raw("cos\nsys").b), "not terminated by a newline");
  expect_error(run(Pk().raw("\x8a\x09").b), "does not fit 64 bits");
  expect_error(run(Pk().op('N').op('N').op('u').b), "no MARK");
  expect_error(run(Pk().op('}').op('(').op('N').op('u').b), "odd number");
  expect_error(run(Pk().op('N').op('(').op('N').op('e').b), "APPENDS on a None");
}

TEST(TorchPickle, CapsStackAndMemo) {
  std::string deep = "\x80\x02" + std::string(100, '(');
  expect_error(run(deep, PickleLimits{50, 100}), "stack deeper than 50");
  std::string memo = "\x80\x02N";
  for (int i = 0; i < 20; ++i) memo += "q" + std::string(1, static_cast<char>(i));
  expect_error(run(memo, PickleLimits{100, 10}), "memo larger than 10");
}

TEST(TorchPickle, CapsValuesAndContainerReferences) {
  // Values that never stay on the stack: EMPTY_TUPLE, APPEND to one list, over and over.
  std::string churn = "\x80\x02]";
  for (int i = 0; i < 1000; ++i) churn += ")a";
  churn += ".";
  expect_error(run(churn, PickleLimits{100, 100, 500, 100000}), "more than 500 values");
  ASSERT_TRUE(run(churn).ok());
  // One value referenced over and over: l = []; l.append((l, l, ... 300 times)), repeated.
  std::string refs = B("\x80\x02]q\x00");
  for (int round = 0; round < 10; ++round) {
    refs += "(";
    for (int i = 0; i < 300; ++i) refs += B("h\x00");
    refs += "ta";
  }
  refs += ".";
  expect_error(run(refs, PickleLimits{1000, 100, 1000, 2000}), "more than 2000 references");
  ASSERT_TRUE(run(refs).ok());
}

TEST(TorchPickle, DeepNestingAndCyclesAreFreedWithoutRecursion) {
  // 100,000 nested 1-tuples: ((((...,),),),)
  std::string b = "\x80\x02N" + std::string(100000, '\x85') + ".";
  auto p = run(b);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->value_count(), 100001u);
  // 100,000 open MARKs closed one by one: nested tuples built from marks.
  std::string m = "\x80\x02" + std::string(100000, '(') + std::string(100000, 't') + ".";
  ASSERT_TRUE(run(m).ok());
  // A list that contains itself: l = []; l.append(l)
  auto c =
      run(B("\x80\x02]q\x00h\x00"
            "a."));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->root().items[0], &c->root());
}

TEST(TorchPickle, PersistentIdShape) {
  auto bad = [](const std::string& inner) { return run(Pk().mark().raw(inner).tuple().op('Q').stop().b); };
  expect_error(bad(Pk().str("module").b.substr(2)), "not a ('storage', class, key, location, numel) tuple");
  const std::string cls = Pk().global("torch", "FloatStorage").b.substr(2);
  expect_error(bad(Pk().str("storage").b.substr(2) + Pk().str("x").b.substr(2) + Pk().str("0").b.substr(2) +
                   Pk().str("cpu").b.substr(2) + "K\x01"),
               "not a torch storage class");
  expect_error(
      bad(Pk().str("storage").b.substr(2) + cls + Pk().str("../0").b.substr(2) + Pk().str("cpu").b.substr(2) + "K\x01"),
      "storage key '../0' is not a decimal number");
  expect_error(
      bad(Pk().str("storage").b.substr(2) + cls + Pk().str("0").b.substr(2) + Pk().str("c p u").b.substr(2) + "K\x01"),
      "not a device name");
  expect_error(
      bad(Pk().str("storage").b.substr(2) + cls + Pk().str("0").b.substr(2) + Pk().str("cpu").b.substr(2) + "N"),
      "invalid element count");
  expect_error(run(Pk().global("torch", "Float9Storage").stop().b), "'torch.Float9Storage' is not allowed");
  // A GPU-saved checkpoint names its device; the location is ignored.
  ASSERT_TRUE(
      bad(Pk().str("storage").b.substr(2) + cls + Pk().str("0").b.substr(2) + Pk().str("cuda:0").b.substr(2) + "K\x01")
          .ok());
}

TEST(TorchArchive, LoadsAHandBuiltArchive) {
  std::string data(16, '\0');
  const float v[4] = {1, 2, 3, 4};
  std::memcpy(data.data(), v, 16);
  TensorSet ts;
  const std::string zip = test::make_torch_zip(valid_pickle(), {{"0", data}});
  ASSERT_TRUE(
      parse_torch_checkpoint({reinterpret_cast<const uint8_t*>(zip.data()), zip.size()}, "t.pt", nullptr, ts).ok());
  ASSERT_NE(ts.find("w"), nullptr);
  EXPECT_EQ(std::memcmp(ts.find("w")->data, v, 16), 0);
}

TEST(TorchArchive, RejectsBadRecordsAndBounds) {
  const std::string data(16, '\0');
  expect_error(load(test::make_torch_zip(valid_pickle(), {})), "no record archive/data/0");
  expect_error(load(test::make_torch_zip(valid_pickle(), {{"0", data.substr(0, 12)}})),
               "claims 4 elements of 4 bytes, but its record holds 12 bytes");
  auto tensor = [&](int numel, int offset, std::vector<int> size, std::vector<int> stride) {
    return load(test::make_torch_zip(
        Pk().op('}').str("w").tensor("FloatStorage", "0", numel, offset, size, stride).op('s').stop().b,
        {{"0", data}}));
  };
  expect_error(tensor(4, 1, {4}, {1}), "reaches past the end of its storage '0'");
  expect_error(tensor(4, 0, {2, 3}, {3, 1}), "reaches past the end");
  expect_error(tensor(4, 4, {1}, {1}), "reaches past the end");
  EXPECT_TRUE(tensor(4, 3, {1}, {1}).ok());
  EXPECT_TRUE(tensor(4, 4, {0}, {1}).ok());           // no elements: any offset
  EXPECT_TRUE(tensor(4, 0, {1000, 4}, {0, 1}).ok());  // stride 0: more elements than storage
  EXPECT_TRUE(tensor(4, 0, {2, 2}, {1, 2}).ok());     // transposed: copied
  expect_error(tensor(4, 0, {1 << 30, 1 << 30, 1 << 30}, {0, 0, 0}), "implausible shape");
  expect_error(tensor(4, 0, {1 << 24, 1 << 12}, {0, 0}), "non-contiguous tensors would expand");
  // INT32_MAX strides: the extent overflows neither silently nor into a small number.
  expect_error(tensor(4, 0, {3, 3}, {0x7fffffff, 0x7fffffff}), "reaches past the end");
  expect_error(load(test::make_torch_zip(Pk().op('}').str("w").op('N').op('s').stop().b)), "'w' is not a tensor");
  expect_error(load(test::make_torch_zip(Pk().op(']').stop().b)), "does not hold a dict");
  expect_error(load(test::make_torch_zip(Pk().op('}').str("model_state_dict").op('N').op('s').stop().b)),
               "'model_state_dict' is not a dict");
  expect_error(load(test::make_torch_zip(Pk().op('}')
                                             .mark()
                                             .str("w")
                                             .tensor("FloatStorage", "0", 4, 0, {4}, {1})
                                             .str("w")
                                             .tensor("FloatStorage", "0", 4, 0, {4}, {1})
                                             .op('u')
                                             .stop()
                                             .b,
                                         {{"0", data}})),
               "names 'w' twice");
}

TEST(TorchArchive, RejectsBadContainers) {
  const std::string data(16, '\0');
  const std::string pkl = valid_pickle();
  expect_error(load(test::make_torch_zip(pkl, {{"0", data}}, {8, 0x0808})), "compressed (method 8, deflate)");
  expect_error(load(test::make_torch_zip(pkl, {{"0", data}}, {0, 0x0809})), "is encrypted");
  expect_error(load(test::make_zip({{"archive/data.pkl", pkl}, {"archive/../evil", "x"}})), "not a safe relative path");
  expect_error(load(test::make_zip({{"archive/data.pkl", pkl}, {"/etc/passwd", "x"}})), "not a safe relative path");
  expect_error(load(test::make_zip({{"archive/data.pkl", pkl}, {"archive//x", "x"}})), "not a safe relative path");
  expect_error(load(test::make_zip({{"archive/data.pkl", pkl}, {"archive\\x", "x"}})), "not a safe relative path");
  expect_error(load(test::make_zip({{"archive/data.pkl", pkl}, {"other/data/0", data}})),
               "outside the archive folder 'archive/'");
  expect_error(load(test::make_zip({{"archive/data.pkl", pkl}, {"archive/data.pkl", pkl}})), "duplicate entry");
  expect_error(load(test::make_zip({{"data.pkl", pkl}})), "not inside an archive folder");
  expect_error(load(test::make_zip({{"archive/version", "3"}})), "no archive/data.pkl");
  expect_error(load(test::make_zip({{"archive/data.pkl", pkl}, {"archive/byteorder", "big"}})), "little-endian");
  expect_error(load("\x80\x02\x8a\x0al\xfc\x9c"
                    "F\xf9 j\xa8P\x19."),
               "legacy");
  expect_error(load("hello world"), "not a torch checkpoint");
  expect_error(load(std::string("PK\x03\x04", 4) + std::string(100, '\0')), "no end-of-central-directory");
  // Truncations of a valid archive at every length.
  const std::string zip = test::make_torch_zip(pkl, {{"0", data}});
  for (size_t n = 0; n < zip.size(); ++n) EXPECT_FALSE(load(zip.substr(0, n)).ok()) << n;
  ASSERT_TRUE(load(zip).ok());
  // Central-directory offsets pointing elsewhere.
  std::string bad = zip;
  const size_t cd = bad.rfind(std::string("PK\x01\x02", 4));
  bad[cd + 42] = '\x7f';  // local header offset of the last entry
  expect_error(load(bad), "no local header");
}

TEST(TorchArchive, ZipReaderFindsEntries) {
  const std::string zip = test::make_zip({{"a/x", "12345"}, {"a/data/0", ""}});
  auto z = ZipReader::open({reinterpret_cast<const uint8_t*>(zip.data()), zip.size()}, "z");
  ASSERT_TRUE(z.ok()) << z.error().message;
  ASSERT_NE(z->find("a/x"), nullptr);
  EXPECT_EQ(z->find("a/x")->data_offset % 64, 0u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(z->data(*z->find("a/x")).data()), 5), "12345");
  EXPECT_EQ(z->find("a/data/0")->size, 0u);
  EXPECT_EQ(z->find("a/y"), nullptr);
}

}  // namespace
}  // namespace gemma
