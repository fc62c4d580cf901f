// Model::load: recognises the checkpoint format from the path and its first bytes, runs that
// format's loader, binds the weights and finds the tokenizer.
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <unistd.h>

#include "model/loaders.h"
#include "model/model.h"
#include "util/mapped_file.h"

namespace gemma {

namespace fs = std::filesystem;

namespace {

enum class Format { kGguf, kHf, kTorch, kOrbax };

// The format and the path its loader takes (for a Kaggle folder, the checkpoint folder inside).
struct Detected {
  Format format;
  std::string path;
};

// An Orbax checkpoint directory: OCDBT (manifest.ocdbt) or per-array zarr with Orbax's metadata.
// Every std::filesystem call here takes an error_code: the throwing overloads abort the process on
// a symlink loop (`loop -> loop`) or an unreadable entry beside a checkpoint.
bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

bool is_orbax_dir(const fs::path& dir) {
  for (const char* marker : {"manifest.ocdbt", "_METADATA", "_CHECKPOINT_METADATA", "checkpoint"})
    if (path_exists(dir / marker)) return true;
  return false;
}

Result<Detected> detect_format(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return not_found("{}: no such file or directory", path);
  if (fs::is_directory(path, ec)) {
    if (path_exists(fs::path(path) / "config.json")) return Detected{Format::kHf, path};
    if (path_exists(fs::path(path) / "pytorch_model.bin.index.json")) return Detected{Format::kTorch, path};
    if (is_orbax_dir(path)) return Detected{Format::kOrbax, path};
    std::vector<std::string> orbax_subdirs;  // a Kaggle Flax download: tokenizer.model beside one checkpoint folder
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".ckpt") return Detected{Format::kTorch, path};  // gemma_pytorch: model.ckpt
      std::error_code dir_ec;
      if (it->is_directory(dir_ec) && is_orbax_dir(it->path())) orbax_subdirs.push_back(it->path().string());
    }
    if (ec) return invalid_argument("{}: cannot list the directory: {}", path, ec.message());
    if (orbax_subdirs.size() == 1) return Detected{Format::kOrbax, orbax_subdirs[0]};
    return unsupported(
        "{}: directory holds no recognised checkpoint (expected config.json + safetensors, a gemma_pytorch "
        ".ckpt or an Orbax checkpoint)",
        path);
  }
  char magic[4] = {};
  GE_ASSIGN(const RegularFile file, open_regular_file(path));  // a FIFO or /dev/zero: an error, not a hang
  const ssize_t got = pread(file.fd, magic, 4, 0);
  ::close(file.fd);
  const ssize_t n = got < 0 ? 0 : got;
  if (n == 4 && std::memcmp(magic, "GGUF", 4) == 0) return Detected{Format::kGguf, path};
  if (n == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0) return Detected{Format::kTorch, path};  // zip
  // Legacy torch.save files are a bare pickle; the torch loader explains why they are refused.
  if (n >= 2 && static_cast<uint8_t>(magic[0]) == 0x80 && magic[1] >= 2 && magic[1] <= 5)
    return Detected{Format::kTorch, path};
  auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".safetensors") || ends_with(".safetensors.index.json")) return Detected{Format::kHf, path};
  if (ends_with("pytorch_model.bin.index.json")) return Detected{Format::kTorch, path};
  if (n < 4) return unsupported("{}: file too short to be a checkpoint", path);
  return unsupported("{}: unrecognised checkpoint format (not GGUF, safetensors or torch.save)", path);
}

bool hf_has_chat_template(const std::string& dir) {
  if (path_exists(fs::path(dir) / "chat_template.jinja")) return true;
  auto text = read_text_file((fs::path(dir) / "tokenizer_config.json").string());
  return text.ok() && text->find("\"chat_template\"") != std::string::npos;
}

}  // namespace

Result<std::unique_ptr<Model>> Model::load(const std::string& path, const LoadOptions& options) {
  GE_ASSIGN(Detected found, detect_format(path));
  LoadedCheckpoint ck;
  switch (found.format) {
    case Format::kGguf: {
      GE_ASSIGN(ck, load_gguf(found.path, options.pages));
      break;
    }
    case Format::kHf: {
      GE_ASSIGN(ck, load_hf(found.path, options.pages));
      break;
    }
    case Format::kTorch: {
      GE_ASSIGN(ck, load_gemma_pytorch(found.path));
      break;
    }
    case Format::kOrbax: {
      GE_ASSIGN(ck, load_orbax(found.path));
      break;
    }
  }

  std::optional<Tokenizer> tok;
  if (!options.tokenizer_path.empty()) {
    GE_ASSIGN(tok, Tokenizer::from_file(options.tokenizer_path));
    ck.info.tokenizer_source = options.tokenizer_path;
  } else if (ck.gguf && ck.gguf->find("tokenizer.ggml.tokens")) {
    GE_ASSIGN(tok, Tokenizer::from_gguf(*ck.gguf));
    ck.info.tokenizer_source = "GGUF metadata";
  } else if (!ck.tokenizer_dir.empty()) {
    for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
      const std::string p = (fs::path(ck.tokenizer_dir) / name).string();
      if (!path_exists(p)) continue;
      GE_ASSIGN(tok, Tokenizer::from_file(p));
      ck.info.tokenizer_source = p;
      break;
    }
    if (hf_has_chat_template(ck.tokenizer_dir)) ck.config.instruction_tuned = true;
  }
  if (tok && tok->vocab_size() > ck.config.vocab_size)  // e.g. HF's <image_soft_token> on a text-only model
    ck.info.notes.push_back(
        fmt::format("tokenizer has {} tokens, the embedding {} rows: ids past the rows are rejected", tok->vocab_size(),
                    ck.config.vocab_size));
  ck.gguf.reset();  // the tensor views keep the file map alive on their own
  GE_ASSIGN(Weights w, bind_weights(ck.config, std::move(ck.tensors), path, options.backend));
  return std::make_unique<Model>(std::move(ck.config), std::move(w), std::move(tok), std::move(ck.info));
}

}  // namespace gemma
