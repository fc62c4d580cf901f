// Fixture readers shared by the image tests (tests/fixtures/images, written by tools/fixtures_image.py).
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace gemma::test {

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline nlohmann::json read_json(const std::string& relative) {
  std::ifstream f(fixture(relative));
  return nlohmann::json::parse(f);
}

}  // namespace gemma::test
