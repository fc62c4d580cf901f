#include "util/mapped_file.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/stat.h>

namespace gemma {
namespace {

class MappedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("gemma_mapped_file_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
  }
  void TearDown() override { std::remove(path_.c_str()); }
  void write(const std::vector<uint8_t>& bytes) {
    std::ofstream out(path_, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::string path_;
};

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 131 + (i >> 12));
  return v;
}

// Both residencies give the file's bytes; the 2 MiB-page copy starts on a 2 MiB boundary (where
// the kernel can back it with huge pages) and is used only where THP is on.
TEST_F(MappedFileTest, MappedAndHugeCopyHoldTheFilesBytes) {
  const std::vector<uint8_t> bytes = pattern((size_t{5} << 20) + 12345);  // 2.5 huge pages, ragged end
  write(bytes);
  for (FilePages pages : {FilePages::kMapped, FilePages::kHuge}) {
    auto m = MappedFile::open(path_, pages);
    ASSERT_TRUE(m.ok()) << m.error().message;
    ASSERT_EQ((*m)->size(), bytes.size());
    EXPECT_EQ(std::vector<uint8_t>((*m)->data(), (*m)->data() + (*m)->size()), bytes);
    const bool huge = pages == FilePages::kHuge && huge_pages_available();
    EXPECT_EQ((*m)->huge_pages(), huge);
    if (huge) { EXPECT_EQ(reinterpret_cast<uintptr_t>((*m)->data()) % (uintptr_t{2} << 20), 0u); }
  }
}

// open_ranges copies only the wanted ranges (overlapping ones merged, ends clamped to the file);
// the rest of the copy is untouched zero memory. Mapped, the whole file is there.
TEST_F(MappedFileTest, OpenRangesCopiesOnlyTheWantedBytes) {
  const std::vector<uint8_t> bytes = pattern((size_t{5} << 20) + 12345);
  write(bytes);
  const std::vector<MappedFile::Range> wanted = {{100, 5000}, {4000, 9000}, {size_t{3} << 20, UINT64_MAX}};
  for (FilePages pages : {FilePages::kMapped, FilePages::kHuge}) {
    auto m = MappedFile::open_ranges(path_, pages, wanted);
    ASSERT_TRUE(m.ok()) << m.error().message;
    ASSERT_EQ((*m)->size(), bytes.size());
    if (!(*m)->huge_pages()) {
      EXPECT_EQ((*m)->copied_bytes(), 0u);
      EXPECT_EQ(std::vector<uint8_t>((*m)->data(), (*m)->data() + (*m)->size()), bytes);
      continue;
    }
    EXPECT_EQ((*m)->copied_bytes(), 8900u + (bytes.size() - (size_t{3} << 20)));
    for (size_t i = 0; i < bytes.size(); ++i) {
      const bool in = (i >= 100 && i < 9000) || i >= (size_t{3} << 20);
      ASSERT_EQ((*m)->data()[i], in ? bytes[i] : 0) << i;
    }
  }
}

TEST_F(MappedFileTest, ErrorsNameThePathAndReason) {
  write({});
  for (FilePages pages : {FilePages::kMapped, FilePages::kHuge}) {
    auto empty = MappedFile::open(path_, pages);
    ASSERT_FALSE(empty.ok());
    EXPECT_NE(empty.error().message.find("file is empty"), std::string::npos) << empty.error().message;
    EXPECT_EQ(empty.error().kind, ErrorKind::kCorruptInput);
    auto missing = MappedFile::open(path_ + ".missing", pages);
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message.find(".missing: cannot open"), std::string::npos) << missing.error().message;
    EXPECT_EQ(missing.error().kind, ErrorKind::kNotFound);
    auto dir = MappedFile::open(std::filesystem::temp_directory_path().string(), pages);
    ASSERT_FALSE(dir.ok());
    EXPECT_NE(dir.error().message.find("is a directory"), std::string::npos) << dir.error().message;
    EXPECT_EQ(dir.error().kind, ErrorKind::kInvalidArgument);
  }
}

TEST_F(MappedFileTest, FifosAndDevicesAreRefusedNotRead) {
  // Opening a FIFO used to block until a writer came; /dev/zero was read without end.
  ASSERT_EQ(mkfifo(path_.c_str(), 0600), 0);
  auto fifo = MappedFile::open(path_);
  ASSERT_FALSE(fifo.ok());
  EXPECT_NE(fifo.error().message.find("is a FIFO"), std::string::npos) << fifo.error().message;
  auto text = read_text_file(path_);
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.error().message.find("is a FIFO"), std::string::npos) << text.error().message;
  for (const char* dev : {"/dev/zero", "/dev/null"}) {
    auto d = read_text_file(dev);
    ASSERT_FALSE(d.ok()) << dev;
    EXPECT_NE(d.error().message.find("is a device"), std::string::npos) << d.error().message;
    EXPECT_FALSE(MappedFile::open(dev).ok()) << dev;
  }
}

TEST_F(MappedFileTest, TextFilesAreBounded) {
  write(pattern(100));
  auto ok = read_text_file(path_);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->size(), 100u);
  auto big = read_text_file(path_, 99);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().message.find("larger than"), std::string::npos) << big.error().message;
}

}  // namespace
}  // namespace gemma
