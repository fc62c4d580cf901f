// The `gemma` binary end to end: every subcommand on a tiny model built here, the real model where
// installed, and every kind of bad input the issue names. Bad input must give one error line on
// stderr and a non-zero exit, never a crash or a hang.
#include <sys/wait.h>

#include <cstring>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/gguf_builder.h"
#include "support/test_support.h"

namespace gemma {
namespace {

struct CliRun {
  int status = -1;
  std::string out, err;
};

// Runs the gemma binary with `args` (a shell fragment) and stdin from the file `in`; 120 s timeout.
CliRun gemma_stdin_from(const std::string& args, const std::string& in) {
  static const std::string dir = test::temp_dir();
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  const std::string cmd = "timeout 120 " + std::string(GEMMA_CLI) + " " + args + " <" + in + " >" + out + " 2>" + err;
  CliRun r;
  const int rc = std::system(cmd.c_str());
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// Runs the gemma binary with `args` (a shell fragment) and optional stdin; 120 s timeout.
CliRun gemma(const std::string& args, const std::string& stdin_text = "") {
  static const std::string in = test::temp_dir() + "/stdin";
  test::write_file(in, stdin_text);
  return gemma_stdin_from(args, in);
}

// Asserts a clean failure: exit status 1 (not a signal, not a timeout) and a single error line.
void expect_clean_error(const CliRun& r, const std::string& needle) {
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("gemma: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  size_t lines = 0;
  for (char c : r.err) lines += c == '\n';
  EXPECT_EQ(lines, 1u) << r.err;
}

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::temp_dir();
    tiny_ = dir_ + "/tiny.gguf";
    test::GgufBuilder::tiny_gemma3().write(tiny_);
  }
  static std::string dir_, tiny_;
};
std::string Cli::dir_, Cli::tiny_;

TEST_F(Cli, RunGreedyIsDeterministicAndReportsSpeed) {
  const CliRun a = gemma("run -m " + tiny_ + " -p 'hello world' -n 12 --temperature 0");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_NE(a.err.find("tok/s"), std::string::npos) << a.err;
  const CliRun b = gemma("run -m " + tiny_ + " -n 12 --temperature 0", "hello world");  // prompt on stdin
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  const CliRun c =
      gemma("run -m " + tiny_ + " -p 'hello world' -n 12 --temperature 0.8 --top-k 5 --top-p 0.9 --seed 7");
  const CliRun d =
      gemma("run -m " + tiny_ + " -p 'hello world' -n 12 --temperature 0.8 --top-k 5 --top-p 0.9 --seed 7");
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(c.out, d.out) << "same seed, same text";
}

TEST_F(Cli, FillInTheMiddle) {
  const CliRun r = gemma("run -m " + tiny_ + " --fim-prefix 'def f(' --fim-suffix ')' -n 4 --temperature 0");
  EXPECT_EQ(r.status, 0) << r.err;
  GEMMA_REQUIRE_REAL_MODEL();
  expect_clean_error(gemma("run -m " + test::real_model_path() + " --fim-prefix a --fim-suffix b"),
                     "no fill-in-the-middle token");
}

TEST_F(Cli, MissingFile) { expect_clean_error(gemma("run -m /nonexistent/model.gguf -p hi"), "no such file"); }

TEST_F(Cli, FifoOrDeviceAsModelOrTokenizer) {
  // A FIFO used to block the open forever, /dev/zero to be read without end.
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(std::system(("rm -f " + fifo + " && mkfifo " + fifo).c_str()), 0);
  expect_clean_error(gemma("run -m " + fifo + " -p hi"), "is a FIFO");
  expect_clean_error(gemma("run -m " + tiny_ + " --tokenizer " + fifo + " -p hi"), "is a FIFO");
  expect_clean_error(gemma("tokenize --tokenizer " + fifo + " hi"), "is a FIFO");
  expect_clean_error(gemma("inspect /dev/zero"), "is a device");
  expect_clean_error(gemma("tokenize --tokenizer /dev/zero hi"), "is a device");
}

TEST_F(Cli, SymlinkLoopsBesideACheckpoint) {
  // Each loop used to escape as an uncaught std::filesystem_error (abort).
  const std::string d = dir_ + "/loops";
  ASSERT_EQ(std::system(("rm -rf " + d + " && mkdir -p " + d + " && ln -s loop " + d + "/loop").c_str()), 0);
  expect_clean_error(gemma("inspect " + d), "holds no recognised checkpoint");
  const std::string hf = dir_ + "/loops-hf";
  ASSERT_EQ(gemma("convert " + tiny_ + " " + hf).status, 0);
  ASSERT_EQ(std::system(("cd " + hf +
                         " && ln -s loop loop && ln -s model.safetensors.index.json "
                         "model.safetensors.index.json && ln -s chat_template.jinja chat_template.jinja")
                            .c_str()),
            0);
  const CliRun r = gemma("inspect " + hf);
  EXPECT_EQ(r.status, 0) << r.err;
  expect_clean_error(gemma("inspect " + hf + "/loop"), "gemma: error: ");
}

TEST_F(Cli, WrongMagic) {
  test::write_file(dir_ + "/bad.bin", std::string(64, 'x'));
  expect_clean_error(gemma("inspect " + dir_ + "/bad.bin"), "unrecognised checkpoint format");
}

TEST_F(Cli, TruncatedFile) {
  const std::string full = test::GgufBuilder::tiny_gemma3().bytes();
  for (size_t cut : {size_t{10}, size_t{300}, full.size() / 2, full.size() - 7}) {
    test::write_file(dir_ + "/trunc.gguf", full.substr(0, cut));
    const CliRun r = gemma("run -m " + dir_ + "/trunc.gguf -p hi");
    EXPECT_EQ(r.status, 1) << "cut at " << cut << ": " << r.err;
    EXPECT_NE(r.err.find("gemma: error: "), std::string::npos) << r.err;
  }
}

TEST_F(Cli, UnsupportedTensorType) {
  auto b = test::GgufBuilder::tiny_gemma3();
  b.tensor("extra.weight", 19 /* IQ1_S */, {256}, std::vector<uint8_t>(50));
  b.write(dir_ + "/iq.gguf");
  expect_clean_error(gemma("run -m " + dir_ + "/iq.gguf -p hi"), "unsupported ggml type 19");
}

TEST_F(Cli, TensorPointingOutsideFile) {
  auto b = test::GgufBuilder::tiny_gemma3();
  b.override_last_offset(1u << 30);
  b.write(dir_ + "/outside.gguf");
  expect_clean_error(gemma("inspect " + dir_ + "/outside.gguf"), "extends past the end of the file");
}

TEST_F(Cli, ShapesDisagreeWithConfig) {
  auto b = test::GgufBuilder::tiny_gemma3();
  b.kv_u32("gemma3.feed_forward_length", 48);  // duplicate key: rejected
  b.write(dir_ + "/dup.gguf");
  expect_clean_error(gemma("inspect " + dir_ + "/dup.gguf"), "duplicate metadata key");
  // A config that disagrees with the tensors: rebuild with a different FFN size in the metadata.
  test::GgufBuilder c = test::GgufBuilder::tiny_gemma3();
  std::string bytes = c.bytes();
  const std::string key = "gemma3.feed_forward_length";
  const size_t at = bytes.find(key);
  ASSERT_NE(at, std::string::npos);
  uint32_t wrong = 48;
  std::memcpy(&bytes[at + key.size() + 4], &wrong, 4);
  test::write_file(dir_ + "/shape.gguf", bytes);
  expect_clean_error(gemma("run -m " + dir_ + "/shape.gguf -p hi"), "expected [48, 32] from the model config");
}

TEST_F(Cli, PromptLongerThanContext) {
  std::string prompt(200, 'a');
  expect_clean_error(gemma("run -m " + tiny_ + " --ctx 16 -p " + prompt), "longer than the context");
}

TEST_F(Cli, InvalidUtf8) {
  expect_clean_error(gemma("run -m " + tiny_, std::string("ab\xff\xfe", 4)), "UTF-8");
  expect_clean_error(gemma("tokenize -m " + tiny_ + " \"$(printf 'a\\303')\""), "UTF-8");
}

TEST_F(Cli, BadArguments) {
  EXPECT_NE(gemma("run --max-tokens nope").status, 0);
  expect_clean_error(gemma("run -m " + tiny_ + " -p hi --top-p 0"), "--top-p");
  expect_clean_error(gemma("detokenize -m " + tiny_ + " 5 99999"), "outside the vocabulary");
  expect_clean_error(gemma("run -m " + tiny_ + " -p hi -t 100000000"), "--threads");
  expect_clean_error(gemma("run -m " + tiny_ + " -p hi -t -3"), "--threads");
  expect_clean_error(gemma("run -m " + tiny_ + " -p hi --repeat-penalty 0"), "--repeat-penalty");
  expect_clean_error(gemma("chat -m " + tiny_ + " --min-p 1.5", "hi\n"), "--min-p");
  expect_clean_error(gemma("run -m " + tiny_ + " -p hi --presence-penalty -3"), "--presence-penalty");
}

TEST_F(Cli, PenaltiesChangeGreedyOutput) {
  const std::string base = "run -m " + tiny_ + " -p 'hello world' -n 24 --temperature 0";
  const CliRun plain = gemma(base), penalized = gemma(base + " --repeat-penalty 1.8 --frequency-penalty 1");
  ASSERT_EQ(plain.status, 0) << plain.err;
  ASSERT_EQ(penalized.status, 0) << penalized.err;
  EXPECT_NE(plain.out, penalized.out);
  EXPECT_EQ(gemma(base + " --repeat-penalty 1 --frequency-penalty 0").out, plain.out);  // off: unchanged
}

TEST_F(Cli, EndlessStdinIsBounded) {
  // Used to read /dev/zero until memory ran out.
  expect_clean_error(gemma_stdin_from("run -m " + tiny_ + " -n 1", "/dev/zero"), "standard input is larger than");
  expect_clean_error(gemma_stdin_from("tokenize -m " + tiny_, "/dev/zero"), "standard input is larger than");
  const CliRun r = gemma_stdin_from("tokenize -m " + tiny_ + " --jsonl", "/dev/zero");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("line 1: an input line is longer than"), std::string::npos) << r.err;
}

TEST_F(Cli, TokenizeJsonlAndDetokenize) {
  const CliRun r = gemma("tokenize -m " + tiny_ + " --jsonl --bos", "{\"text\": \"ab\"}\nnot json\n{\"text\": \"\"}\n");
  EXPECT_EQ(r.status, 1);  // the bad line is reported in order, the others still answered
  std::istringstream lines(r.out);
  std::string l1, l2, l3;
  std::getline(lines, l1), std::getline(lines, l2), std::getline(lines, l3);
  EXPECT_EQ(nlohmann::json::parse(l1)["ids"], nlohmann::json({2, 4 + 'a', 4 + 'b'}));
  EXPECT_TRUE(nlohmann::json::parse(l2).contains("error"));
  EXPECT_EQ(nlohmann::json::parse(l3)["ids"], nlohmann::json({2}));
  EXPECT_NE(r.err.find("gemma: error: line 2: invalid JSON"), std::string::npos) << r.err;
  // Each kind of bad line is named, with its line number, on stdout and stderr.
  const CliRun bad =
      gemma("tokenize -m " + tiny_ + " --jsonl", "{\"text\": 5}\n[1]\n{}\n\"\xff\"\n{\"text\": \"ok\"}\n");
  EXPECT_EQ(bad.status, 1);
  for (const char* s : {"line 1: \"text\" is number, not a string", "line 2: expected a JSON object",
                        "line 3: missing \"text\"", "line 4: invalid UTF-8"})
    EXPECT_NE(bad.err.find(s), std::string::npos) << s << "\n" << bad.err;
  EXPECT_NE(bad.out.find("{\"ids\":"), std::string::npos) << bad.out;
  const CliRun d = gemma("detokenize -m " + tiny_ + " 101 105");
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_EQ(d.out, "ae\n");
}

std::string slurp_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST_F(Cli, ConvertNeverOverwritesItsInput) {
  const std::string in = dir_ + "/self.gguf", before = test::GgufBuilder::tiny_gemma3().bytes();
  test::write_file(in, before);
  // Onto itself, through a symlink and through a hard link: refused, the input untouched.
  expect_clean_error(gemma("convert " + in + " " + in), "is the input");
  ASSERT_EQ(std::system(("ln -sf " + in + " " + dir_ + "/self-link.gguf").c_str()), 0);
  expect_clean_error(gemma("convert " + in + " " + dir_ + "/self-link.gguf"), "is the input");
  ASSERT_EQ(std::system(("ln -f " + in + " " + dir_ + "/self-hard.gguf").c_str()), 0);
  expect_clean_error(gemma("convert " + in + " " + dir_ + "/self-hard.gguf --quant q8_0"), "is the input");
  // A directory output that holds the input file.
  expect_clean_error(gemma("convert " + in + " " + dir_ + " --format safetensors"), "holds the input");
  EXPECT_EQ(slurp_file(in), before);
  // A real conversion replaces the target by rename and leaves no temporary file behind.
  const std::string out = dir_ + "/conv-out/x.gguf";
  ASSERT_EQ(std::system(("mkdir -p " + dir_ + "/conv-out").c_str()), 0);
  test::write_file(out, "old");
  const CliRun r = gemma("convert " + in + " " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(slurp_file(out).substr(0, 4), "GGUF");
  FILE* p = popen(("ls " + dir_ + "/conv-out").c_str(), "r");
  char buf[256] = {};
  const size_t n = fread(buf, 1, sizeof buf - 1, p);
  pclose(p);
  EXPECT_EQ(std::string(buf, n), "x.gguf\n");
}

TEST_F(Cli, InspectPrintsPlan) {
  const CliRun r = gemma("inspect " + tiny_ + " --ctx 64");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* s : {"GGUF v3", "Gemma 3", "custom", "KV cache", "weights", "LL"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

TEST_F(Cli, ChatKeepsHistoryAcrossTurns) {
  const CliRun r = gemma("chat -m " + tiny_ + " --ctx 512 -n 4 --temperature 0 -v", "first\nsecond\n");
  ASSERT_EQ(r.status, 0) << r.err;
  // Two turns, and the second turn's context includes the first (the cache was kept).
  size_t p1 = r.err.find("context "), p2 = r.err.find("context ", p1 + 1);
  ASSERT_NE(p2, std::string::npos) << r.err;
  const int c1 = std::stoi(r.err.substr(p1 + 8)), c2 = std::stoi(r.err.substr(p2 + 8));
  EXPECT_GT(c2, c1);
}

TEST_F(Cli, BenchJsonHasLlamaBenchFields) {
  const CliRun r = gemma("bench -m " + tiny_ + " -p 16 -n 4 -r 2 -o jsonl -t 1");
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    for (const char* f : {"n_prompt", "n_gen", "n_depth", "n_threads", "avg_ts", "stddev_ts", "avg_ns", "samples_ns",
                          "samples_ts", "model_size", "model_n_params"})
      EXPECT_TRUE(j.contains(f)) << f;
    EXPECT_GT(j["avg_ts"].get<double>(), 0);
    ++n;
  }
  EXPECT_EQ(n, 2);
  const CliRun md = gemma("bench -m " + tiny_ + " -p 16 -n 0 -r 1");
  ASSERT_EQ(md.status, 0) << md.err;
  EXPECT_NE(md.out.find("| pp16 |"), std::string::npos) << md.out;
}

TEST_F(Cli, PerplexityPrintsEstimate) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the quick brown fox ";
  test::write_file(dir_ + "/text.txt", text);
  const CliRun r = gemma("perplexity -m " + tiny_ + " -f " + dir_ + "/text.txt --ctx 128");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Final estimate: PPL = "), std::string::npos) << r.out;
  expect_clean_error(gemma("perplexity -m " + tiny_ + " -f " + dir_ + "/text.txt --ctx 4096"), "needs at least");
}

TEST_F(Cli, DefaultModelIsAnnounced) {
  GEMMA_REQUIRE_REAL_MODEL();
  const CliRun r = gemma("run -p 'The capital of France is' -n 8 --temperature 0");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("using the default Gemma 3 270M"), std::string::npos) << r.err;
  EXPECT_GT(r.out.size(), 8u) << r.out;
}

// Images (Gemma 3): the tiny multimodal model with the tiny vocabulary, every bad input the issue
// names refused with one line, and the tower never loaded for a text-only model.
class CliImages : public Cli {
 protected:
  static std::string mm() {
    return "-m " + test::fixture("models/gemma3_mm_tiny/new") + " --tokenizer " +
           test::fixture("models/gemma3_tiny/model.f32.gguf");
  }
  static std::string img(const std::string& name) { return test::fixture("images/" + name); }
};

TEST_F(CliImages, RunWithTwoImagesIsDeterministic) {
  const std::string args = "run " + mm() + " --raw -n 6 --temperature 0 --image " + img("pre/up_40x30.png") +
                           " --image " + img("pre/down_200x120.png");
  // The prompt of the HF fixture gemma3_mm_tiny/prompt/two_images.json: its 70 ids.
  const std::string p = " -p ' a b<start_of_image> c d e f<start_of_image>\n g h i j k l'";
  const CliRun a = gemma(args + p);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_NE(a.err.find("prefill 70 tokens"), std::string::npos) << a.err;
  EXPECT_EQ(gemma(args + p).out, a.out);
  // Without markers the images go first: a different prompt, so (on this model) different logits.
  const CliRun b = gemma(args + " -p ' a b c d'");
  ASSERT_EQ(b.status, 0) << b.err;
  // Pan-and-scan on a wide image: 3 crops, 4 soft tokens each, and HF's text around them.
  const CliRun c = gemma("run " + mm() + " --raw -n 2 --temperature 0 --pan-and-scan --image " +
                         img("pre/pas_default_800x300.png") + " -p '<start_of_image> x y'");
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_NE(c.err.find("prefill 162 tokens"), std::string::npos) << c.err;  // the HF fixture's length
}

TEST_F(CliImages, ChatAttachesImagesToTheNextMessage) {
  const std::string in = "/image " + img("pre/up_40x30.png") + "\n a b\n c\n";
  const CliRun r = gemma("chat " + mm() + " -n 3 --temperature 0 -v", in);
  ASSERT_EQ(r.status, 0) << r.err;
  size_t p1 = r.err.find("context "), p2 = r.err.find("context ", p1 + 1);
  ASSERT_NE(p2, std::string::npos) << r.err;
  EXPECT_GT(std::stoi(r.err.substr(p1 + 8)), 6) << r.err;  // the first turn holds the image's tokens
  // A script's bad image stops the chat with one error line (the base-model note aside).
  for (const auto& [cmd, input, needle] :
       {std::tuple<std::string, std::string, std::string>{"chat " + mm() + " -n 3",
                                                          "/image " + img("decode/zero.png") + "\nhi\n", "bad PNG"},
        {"chat -m " + tiny_ + " -n 3", "/image " + img("pre/up_40x30.png") + "\nhi\n", "no vision tower"},
        {"chat " + mm() + " -n 3", "/image\nhi\n", "/image PATH"}}) {
    const CliRun e = gemma(cmd, input);
    EXPECT_EQ(e.status, 1) << e.err;
    EXPECT_NE(e.err.find(needle), std::string::npos) << e.err;
    size_t errors = 0;
    for (size_t q = e.err.find("gemma: error: "); q != std::string::npos; q = e.err.find("gemma: error: ", q + 1))
      ++errors;
    EXPECT_EQ(errors, 1u) << e.err;
  }
}

TEST_F(CliImages, BadImagesAreRefusedWithOneLine) {
  const std::string run = "run " + mm() + " -p hi --image ";
  expect_clean_error(gemma(run + "/nonexistent/a.png"), "cannot open");
  expect_clean_error(gemma(run + img("decode/zero.png")), "bad PNG");                 // zero-size header
  expect_clean_error(gemma(run + img("decode/trunc_progressive_jpg")), "truncated");  // truncated JPEG
  expect_clean_error(gemma(run + img("decode/trunc_lossy_webp")), "WebP");            // truncated WebP
  expect_clean_error(gemma(run + img("decode/text.txt")), "not an image in a supported format");
  expect_clean_error(gemma(run + img("decode/huge.png")), "over the limit");  // 100000 x 100000 header
  expect_clean_error(gemma(run + img("decode/huge.jpg")), "over the limit");
}

TEST_F(CliImages, PromptAndModelProblemsAreRefusedWithOneLine) {
  const std::string a = " --image " + img("pre/up_40x30.png");
  expect_clean_error(gemma("run -m " + tiny_ + " -p hi" + a), "this model has no vision tower");
  expect_clean_error(gemma("run " + mm() + " -p '<start_of_image><start_of_image>'" + a),
                     "2 <start_of_image> markers but 1 image was given");
  expect_clean_error(gemma("run " + mm() + " -p 'a<start_of_image>b'" + a + a + a),
                     "1 <start_of_image> marker but 3 images were given");
  expect_clean_error(gemma("run " + mm() + " --ctx 10 -p hi" + a), "4 of them for 1 image");
  expect_clean_error(gemma("run " + mm() + " -p hi --pan-and-scan-max-crops 0" + a), "--pan-and-scan-max-crops");
  expect_clean_error(gemma("run " + mm() + " -p hi --pan-and-scan-min-ratio 0.5" + a), "--pan-and-scan-min-ratio");
  expect_clean_error(gemma("run " + mm() + " --fim-prefix a --fim-suffix b" + a), "fill-in-the-middle");
  // llama.cpp's mmproj of the same tower gives the same run (a tower projecting to another width
  // than the model's is refused: below, on the real model).
  const std::string mmproj = " --mmproj " + test::fixture("models/gemma3_mm_tiny/mmproj/mmproj.gguf");
  const CliRun with = gemma("run " + mm() + mmproj + " --raw -n 4 --temperature 0 -p ' a b'" + a);
  const CliRun without = gemma("run " + mm() + " --raw -n 4 --temperature 0 -p ' a b'" + a);
  ASSERT_EQ(with.status, 0) << with.err;
  EXPECT_EQ(with.out, without.out);
  // A text-only GGUF with Gemma 3's real tokenizer (which has the image pieces): the tower lookup says so.
  GEMMA_REQUIRE_REAL_MODEL();
  const CliRun r = gemma("run -m " + test::real_model_path() + " -p hi" + a);
  expect_clean_error(r, "this model has no vision tower");
  EXPECT_EQ(r.err.find("; pass --mmproj"), std::string::npos) << "the loader's advice, not ours twice: " << r.err;
  // The tiny tower projects to 32 wide, the 270M model is 640 wide.
  expect_clean_error(gemma("run -m " + test::real_model_path() + mmproj + " -p hi" + a), "640");
}

}  // namespace
}  // namespace gemma
