// Parity of every fixture checkpoint with its reference implementation (tools/fixtures_*.py):
// tests/fixtures/models/<model>/ref/<format>.json names the checkpoint, the prompt, the reference
// logits at every prompt position and the reference's 32-token greedy continuation. We check the
// max |logit difference| at every position against a tolerance justified by the weight type, and
// an identical greedy continuation. The prompt is prefilled in chunks of several sizes, so ring
// buffers wrap inside and across chunks. Measured errors go to $GEMMA_PARITY_REPORT.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "kernels/cpu/cpu_backend.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "support/test_support.h"
#include "util/zstd_file.h"

namespace gemma {
namespace {

namespace fs = std::filesystem;

struct RefCase {
  std::string model_dir, ref_name, checkpoint;
  nlohmann::json ref;
};

// gtest (and so ctest's test list) shows a case by its fixture name, not its bytes.
void PrintTo(const RefCase& c, std::ostream* os) { *os << c.ref_name; }

std::vector<RefCase> find_cases() {
  std::vector<RefCase> cases;
  const fs::path root = test::fixture("models");
  if (!fs::exists(root)) return cases;
  for (const auto& model : fs::directory_iterator(root)) {
    const fs::path refs = model.path() / "ref";
    if (!fs::exists(refs)) continue;
    for (const auto& f : fs::directory_iterator(refs)) {
      if (f.path().extension() != ".json") continue;
      std::ifstream in(f.path());
      RefCase c;
      c.ref = nlohmann::json::parse(in);
      c.model_dir = model.path().string();
      c.ref_name = model.path().filename().string() + "/" + f.path().stem().string();
      c.checkpoint = (model.path() / c.ref["checkpoint"].get<std::string>()).string();
      cases.push_back(std::move(c));
    }
  }
  std::sort(cases.begin(), cases.end(), [](const RefCase& a, const RefCase& b) { return a.ref_name < b.ref_name; });
  return cases;
}

// Tolerances on max |Δlogit| relative to the reference's logit scale (max |logit|).
// Precise mode (float32 activations; quantized rows dequantized exactly): the engine computes what
// the reference computes, only the float32 summation order differs, ~1e-6 relative per op over a
// few layers; 1e-4 leaves room. Fast mode (the default: activations quantized to int8 per block of
// 32, as llama.cpp does): each element moves by up to 1/254 of its block's maximum; over the
// matrix products of a random tiny model that compounds to a few percent of the logit scale
// (llama.cpp itself is 1-6% off on these files), so fast mode is held to 10% and reported. BF16
// weights have a fast mode too where the CPU has AVX512_BF16: prefill rounds activations to
// bfloat16 (each element by up to 2^-8 of itself, less than int8 blocks move it), as llama.cpp does.
constexpr double kPreciseTolerance = 1e-4;
constexpr double kFastTolerance = 0.10;

bool quantized_format(const std::string& name) {
  for (const char* q : {"gguf_q", "awq", "int8", "bf16"})
    if (name.find(q) != std::string::npos) return true;
  return false;
}

// The fixture column of a report row ("| gemma3_tiny/gguf_q8_0 | ...").
std::string row_fixture(const std::string& row) {
  const size_t end = row.find(" |", 2);
  return end == std::string::npos ? std::string() : row.substr(2, end - 2);
}

// ctest runs each case in its own process (gtest_discover_tests), several at once: each process
// rewrites the file under an exclusive lock on it, with its own rows and the other cases' rows from
// the file (rows of fixtures that no longer exist are dropped), sorted by fixture.
struct Report {
  std::vector<std::string> rows;
  ~Report() {
    const char* path = std::getenv("GEMMA_PARITY_REPORT");
    if (!path || rows.empty()) return;
    const int fd = ::open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) return;
    ::flock(fd, LOCK_EX);
    std::string old;
    char chunk[65536];
    for (ssize_t got; (got = ::read(fd, chunk, sizeof chunk)) > 0;) old.append(chunk, static_cast<size_t>(got));
    std::set<std::string> mine, known;
    for (const auto& r : rows) mine.insert(row_fixture(r));
    for (const auto& c : find_cases()) known.insert(c.ref_name);
    std::vector<std::string> all = rows;
    // The vision tower's section (tests/vision/vision_test.cpp writes it) is kept as it is, and its
    // rows are not this table's.
    const size_t vision = std::min(old.size(), old.find("\n## Vision tower\n"));
    for (size_t pos = 0; pos < vision;) {
      size_t end = old.find('\n', pos);
      if (end == std::string::npos || end > vision) end = vision;
      const std::string line = old.substr(pos, end - pos);
      pos = end + 1;
      if (line.rfind("| ", 0) != 0 || line.rfind("| fixture |", 0) == 0 || line.rfind("| --- ", 0) == 0) continue;
      const std::string f = row_fixture(line);
      if (known.count(f) && !mine.count(f)) all.push_back(line);
    }
    std::stable_sort(all.begin(), all.end(),
                     [](const std::string& a, const std::string& b) { return row_fixture(a) < row_fixture(b); });
    std::string out =
        "# Parity with the reference implementations\n\n"
        "Written by the test run (`tests/model/parity_test.cpp`). One row per (model, checkpoint format) and\n"
        "arithmetic mode: the engine's logits at all 64 prompt positions against the reference's (HF\n"
        "transformers in float32; for GGUF, on the weights as stored in the file), and its 32-token greedy\n"
        "continuation. *precise*/*float*: float32 activations, as the references compute; *fast*: the\n"
        "default for quantized weights, activations quantized to int8 blocks as llama.cpp does (for BF16\n"
        "weights on a CPU with AVX512_BF16, prefill activations rounded to bfloat16). Tolerances\n"
        "are relative to the largest |logit| (the scale column); see the test for their justification.\n"
        "Fixtures and their generators: `tests/fixtures/models/README.md`, `tools/fixtures_*.py`.\n\n"
        "| fixture | checkpoint | mode | max abs Δlogit | logit scale | relative | tolerance | greedy 32 |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |\n";
    for (const auto& r : all) out += r + "\n";
    if (vision < old.size()) out += old.substr(vision);
    bool written = ::ftruncate(fd, 0) == 0;
    for (size_t off = 0; written && off < out.size();) {
      const ssize_t n = ::pwrite(fd, out.data() + off, out.size() - off, static_cast<off_t>(off));
      written = n > 0;
      off += written ? static_cast<size_t>(n) : 0;
    }
    if (!written) std::fprintf(stderr, "cannot write %s\n", path);
    ::close(fd);  // releases the lock
  }
};
Report report;

class Parity : public ::testing::TestWithParam<RefCase> {};

TEST_P(Parity, LogitsAndGreedyMatchReference) {
  const RefCase& c = GetParam();
  auto model = Model::load(c.checkpoint);
  ASSERT_TRUE(model.ok()) << model.error().message;
  const Model& m = **model;
  const std::vector<int32_t> prompt = c.ref["prompt_ids"].get<std::vector<int32_t>>();
  const std::vector<int32_t> greedy_ref = c.ref["greedy_ids"].get<std::vector<int32_t>>();
  const int V = c.ref["vocab"].get<int>();
  ASSERT_EQ(V, m.config().vocab_size);
  auto raw = read_file_maybe_zstd((fs::path(c.model_dir) / "ref" / c.ref["logits"].get<std::string>()).string());
  ASSERT_TRUE(raw.ok()) << raw.error().message;
  ASSERT_EQ(raw->size(), prompt.size() * static_cast<size_t>(V) * sizeof(float));
  const float* ref = reinterpret_cast<const float*>(raw->data());
  double scale = 0;
  for (size_t i = 0; i < prompt.size() * static_cast<size_t>(V); ++i)
    scale = std::max(scale, std::fabs(double(ref[i])));

  const bool quantized = quantized_format(c.ref_name);
  for (bool precise : {true, false}) {
    if (!precise && !quantized) continue;  // float weights: both modes run the same kernels
    CpuBackend backend(2, CpuOptions{precise});
    const double tol = precise ? kPreciseTolerance : kFastTolerance;
    double worst = 0;
    for (int chunk : {64, 7, 1}) {
      auto cache = KvCache::create(backend, m.config(), static_cast<int>(prompt.size() + greedy_ref.size() + 1), chunk,
                                   DType::F32);
      ASSERT_TRUE(cache.ok());
      ForwardBuffers buf = test::forward_buffers(backend, m.config(), chunk);
      std::vector<float> logits;
      for (size_t i = 0; i < prompt.size(); i += static_cast<size_t>(chunk)) {
        const size_t n = std::min(prompt.size() - i, static_cast<size_t>(chunk));
        SequenceChunk sc{cache->get(), std::span<const int32_t>(prompt).subspan(i, n), static_cast<int>(n)};
        Status st = m.forward({&sc, 1}, backend, buf, logits);
        ASSERT_TRUE(st.ok()) << st.error().message;
      }
      ASSERT_EQ(logits.size(), prompt.size() * static_cast<size_t>(V));
      double max_diff = 0;
      for (size_t i = 0; i < logits.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(logits[i]) - ref[i]));
      worst = std::max(worst, max_diff);
      EXPECT_LE(max_diff / scale, tol) << c.ref_name << (precise ? " precise" : " fast") << " chunk " << chunk;
    }

    // Greedy continuation from the engine's own cache, 32 tokens. Required to be identical in
    // precise mode; in fast mode quantization noise may flip a near-tie of a random tiny model, so
    // the number of tokens before the first difference is reported.
    EngineOptions eo;
    eo.n_ctx = static_cast<int>(prompt.size() + greedy_ref.size() + 1);
    eo.step_tokens = 64;
    eo.kv_type = DType::F32;
    auto engine = Engine::create(m, backend, eo);
    ASSERT_TRUE(engine.ok()) << engine.error().message;
    Request req;
    req.prompt = prompt;
    req.sampling = SamplerParams{0, 0, 1, 0};
    req.max_tokens = static_cast<int>(greedy_ref.size());
    std::vector<int32_t> got;
    Status failed;
    req.on_token = [&](const TokenEvent& ev) {
      got.push_back(ev.id);
      return true;
    };
    req.on_done = [&](const RequestResult& r) { failed = r.status; };
    (*engine)->submit(std::move(req));
    ASSERT_TRUE((*engine)->run_to_completion().ok());
    ASSERT_TRUE(failed.ok()) << failed.error().message;
    size_t same = 0;
    while (same < got.size() && same < greedy_ref.size() && got[same] == greedy_ref[same]) ++same;
    if (precise) { EXPECT_EQ(got, greedy_ref) << c.ref_name; }
    const std::string row = fmt::format(
        "| {} | {} | {} | {:.3g} | {:.3g} | {:.2g} | {:.2g} | {} |", c.ref_name, c.ref["checkpoint"].get<std::string>(),
        precise
            ? (quantized ? "precise" : "float")
            : (c.ref_name.find("bf16") != std::string::npos ? "fast (bf16 activations)" : "fast (int8 activations)"),
        worst, scale, worst / scale, tol,
        same == greedy_ref.size() ? std::string("identical") : fmt::format("first {} identical", same));
    std::printf("parity %s\n", row.c_str());
    report.rows.push_back(row);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity, ::testing::ValuesIn(find_cases()), [](const auto& p) {
  std::string n = p.param.ref_name;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});
// No GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST: without fixtures the suite has no cases, which
// gtest reports as a failing GoogleTestVerification test; ParityFixtures below says what is missing.

// Every fixture model has references, and there are as many cases as were committed: a missing or
// emptied fixture directory must fail, not pass with zero cases. Raise kMinCases when adding some.
constexpr size_t kMinCases = 38;

TEST(ParityFixtures, EveryModelHasReferences) {
  const fs::path root = test::fixture("models");
  ASSERT_TRUE(fs::is_directory(root)) << root << " is missing";
  size_t models = 0;
  for (const auto& model : fs::directory_iterator(root)) {
    if (!model.is_directory()) continue;
    ++models;
    size_t refs = 0;
    if (fs::is_directory(model.path() / "ref"))
      for (const auto& f : fs::directory_iterator(model.path() / "ref")) refs += f.path().extension() == ".json";
    EXPECT_GT(refs, 0u) << model.path() << " has no ref/*.json";
  }
  EXPECT_GT(models, 0u) << "no fixture models under " << root;
  EXPECT_GE(find_cases().size(), kMinCases);
}

}  // namespace
}  // namespace gemma
