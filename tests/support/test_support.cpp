#include "support/test_support.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

namespace gemma::test {

std::string fixture(const std::string& relative) { return std::string(GEMMA_FIXTURES_DIR) + "/" + relative; }

std::string real_model_path() {
  if (const char* env = std::getenv("GEMMA_TEST_MODEL")) return env;
  std::string p = GEMMA_REAL_MODEL_PATH;
  return std::filesystem::exists(p) ? p : "";
}

bool real_model_required() {
  const char* env = std::getenv("GEMMA_REQUIRE_REAL_MODEL");
  return env && std::string(env) == "1";
}

std::string temp_dir() {
  std::random_device rd;
  auto dir =
      std::filesystem::temp_directory_path() / ("gemma_test_" + std::to_string(rd()) + "_" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace gemma::test
