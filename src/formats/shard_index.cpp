#include "formats/shard_index.h"

#include <nlohmann/json.hpp>

#include "util/mapped_file.h"
#include "util/printable.h"

namespace gemma {

Result<ShardIndex> read_shard_index(const std::string& index_path) {
  GE_ASSIGN(std::string text, read_text_file(index_path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    return corrupt_input("{}: not a valid checkpoint index (no weight_map object)", index_path);
  ShardIndex index;
  for (auto& [name, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) return corrupt_input("{}: shard of '{}' is not a string", index_path, printable(name));
    const std::string s = shard.get<std::string>();
    if (s.empty() || s.find('/') != std::string::npos || s.find('\\') != std::string::npos || s == "." || s == "..")
      return corrupt_input("{}: shard name '{}' is not a plain file name", index_path, printable(s));
    index.names_by_shard[s].push_back(name);
    index.names.insert(name);
  }
  return index;
}

}  // namespace gemma
