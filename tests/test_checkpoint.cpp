// Checkpoints: the safetensors layout, atomic writes that survive a failure half way or a kill at any
// point, loading that names every mismatch, hostile files rejected without reading out of bounds, and
// resuming training in a fresh process bit for bit.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <fstream>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <xgrad/xgrad.hpp>

#include "graph/decoder_lm.hpp"

using namespace xg;
namespace fs = std::filesystem;

namespace {

/// A fresh directory under the system's temporary directory, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "xgrad-test-XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  std::size_t files() const { return static_cast<std::size_t>(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
};

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A safetensors file from a header (as JSON text) and a data section.
std::vector<std::uint8_t> file_of(const std::string& header, std::size_t data_bytes, std::uint64_t claimed_header = 0) {
  std::vector<std::uint8_t> bytes(8 + header.size() + data_bytes, 0);
  const std::uint64_t n = claimed_header != 0 ? claimed_header : header.size();
  std::memcpy(bytes.data(), &n, 8);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  return bytes;
}

void small_model(Graph& g) {
  g.param("encoder.0.linear1.weight", {3, 2}, Init::normal(0.0, 1.0));
  g.param("encoder.0.linear1.bias", {3}, Init::normal(0.0, 1.0), DType::f64);
}

}  // namespace

TEST_CASE("a checkpoint is a safetensors file that PyTorch's readers understand") {
  TempDir dir;
  Graph g(1);
  small_model(g);
  save_checkpoint(dir / "m.safetensors", g);
  const std::vector<std::uint8_t> bytes = read_bytes(dir / "m.safetensors");
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK((8 + n) % 8 == 0);  // data 8-byte aligned
  const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  CHECK(header["encoder.0.linear1.weight"]["dtype"] == "F32");
  CHECK(header["encoder.0.linear1.weight"]["shape"] == nlohmann::json::array({3, 2}));
  CHECK(header["encoder.0.linear1.weight"]["data_offsets"] == nlohmann::json::array({0, 24}));
  CHECK(header["encoder.0.linear1.bias"]["dtype"] == "F64");
  CHECK(header["encoder.0.linear1.bias"]["data_offsets"] == nlohmann::json::array({24, 48}));
  CHECK(bytes.size() == 8 + n + 48);
  float first = 0.0f;
  std::memcpy(&first, bytes.data() + 8 + n, 4);
  CHECK(first == g.value(g.find("encoder.0.linear1.weight")).as<float>()(0, 0));

  Graph other(2);
  small_model(other);
  CHECK(other.value(other.find("encoder.0.linear1.bias")).as<double>() != g.value(g.find("encoder.0.linear1.bias")).as<double>());
  load_checkpoint(dir / "m.safetensors", other);
  CHECK(other.value(other.find("encoder.0.linear1.bias")).as<double>() == g.value(g.find("encoder.0.linear1.bias")).as<double>());
  CHECK(other.value(other.find("encoder.0.linear1.weight")).as<float>() == g.value(g.find("encoder.0.linear1.weight")).as<float>());
}

TEST_CASE("a save that fails half way leaves the old checkpoint intact and no temporary file") {
  TempDir dir;
  Graph small(1);
  small_model(small);
  save_checkpoint(dir / "m.safetensors", small);
  const std::vector<std::uint8_t> good = read_bytes(dir / "m.safetensors");

  Graph big(2);
  big.param("huge", {1000, 100}, Init::normal(0.0, 1.0));
  // The file size limit makes the kernel refuse the write after 64 KiB, as a full disk would.
  rlimit old{};
  ::getrlimit(RLIMIT_FSIZE, &old);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit limited = old;
  limited.rlim_cur = 64 * 1024;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
  std::string message;
  try {
    save_checkpoint(dir / "m.safetensors", big);
  } catch (const IOError& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  CHECK(message.find("writing tensor 'huge'") != std::string::npos);
  CHECK(message.find("left as it was") != std::string::npos);
  CHECK(read_bytes(dir / "m.safetensors") == good);
  CHECK(dir.files() == 1);
}

TEST_CASE("loading names every missing, unexpected and mismatched tensor, and changes nothing") {
  TempDir dir;
  Graph g(1);
  small_model(g);
  g.param("extra", {2}, Init::zeros());
  save_checkpoint(dir / "m.safetensors", g);

  Graph other(2);
  other.param("encoder.0.linear1.weight", {2, 3}, Init::normal(0.0, 1.0));          // transposed
  other.param("encoder.0.linear1.bias", {3}, Init::normal(0.0, 1.0), DType::f32);  // f32 instead of f64
  other.param("encoder.0.linear2.weight", {3}, Init::zeros());                      // not in the file
  const auto before = other.value(other.find("encoder.0.linear1.weight")).as<float>();
  std::string message;
  try {
    load_checkpoint(dir / "m.safetensors", other);
  } catch (const CheckpointError& e) {
    message = e.what();
  }
  CHECK(message.find("4 problems") != std::string::npos);
  CHECK(message.find("parameter 'encoder.0.linear1.weight' is f32 (3, 2) in the file but f32 (2, 3) in the graph") != std::string::npos);
  CHECK(message.find("'encoder.0.linear1.bias' is f64 (3,) in the file but f32 (3,)") != std::string::npos);
  CHECK(message.find("missing parameter 'encoder.0.linear2.weight'") != std::string::npos);
  CHECK(message.find("unexpected tensor 'extra'") != std::string::npos);
  CHECK(other.value(other.find("encoder.0.linear1.weight")).as<float>() == before);
  // Not strict: the unexpected tensor is ignored, the rest must still fit.
  Graph subset(3);
  small_model(subset);
  load_checkpoint(dir / "m.safetensors", subset, nullptr, {.strict = false});
  CHECK_THROWS_AS(load_checkpoint(dir / "m.safetensors", subset), CheckpointError);
  CHECK_THROWS_AS(load_checkpoint(dir / "absent.safetensors", subset), IOError);
}

TEST_CASE("hostile or corrupt files are rejected with a message naming the problem") {
  const std::string f32_2x2 = R"("w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  struct Case {
    std::string name;
    std::vector<std::uint8_t> bytes;
    std::string expected;
  };
  const std::vector<Case> cases{
      {"empty file", {}, "too short"},
      {"huge header length", file_of("{}", 0, std::uint64_t{1} << 62), "exceeds the limit"},
      {"header past the end", file_of("{}", 0, 4096), "runs past the end"},
      {"not JSON", file_of("{\"w\": [", 0), "not valid JSON"},
      {"not an object", file_of("[1, 2]", 0), "not a JSON object"},
      {"unknown dtype", file_of(R"({"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", 4), "unknown dtype 'F99'"},
      {"unsupported dtype", file_of(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4), "F16 is valid safetensors"},
      {"negative extent", file_of(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "non-negative integer"},
      {"missing offsets", file_of(R"({"w":{"dtype":"F32","shape":[1]}})", 4), "no \"data_offsets\""},
      {"offsets out of range", file_of(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[1000,1016]}})", 16), "run past"},
      {"size mismatch", file_of(R"({"w":{"dtype":"F32","shape":[3,3],"data_offsets":[0,16]}})", 16), "do not hold 9 elements"},
      {"overflowing shape", file_of(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", 16), "overflows"},
      {"overlap", file_of("{" + f32_2x2 + R"(,"v":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16), "overlap"},
      {"hole", file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16), "belong to no tensor"},
      {"truncated data", file_of("{" + f32_2x2 + "}", 10), "run past the 10 data bytes"},
      {"trailing bytes", file_of("{" + f32_2x2 + "}", 20), "after the last tensor"},
      {"metadata not strings", file_of(R"({"__metadata__":{"step":3}})", 0), "metadata 'step' is not a string"},
      {"entry not an object", file_of(R"({"w":7})", 0), "not an object"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    CHECK_THROWS_WITH_AS(parse_safetensors(c.bytes, "bad.safetensors"), doctest::Contains(c.expected.c_str()), CheckpointError);
  }
  // And a well-formed file of the same shape parses.
  const auto good = parse_safetensors(file_of("{" + f32_2x2 + R"(,"__metadata__":{"format":"pt"}})", 16));
  CHECK(good.tensors.at("w").shape() == Shape{2, 2});
  CHECK(good.metadata.at("format") == "pt");
}

namespace {

/// The small decoder LM with dropout that the resume tests train (`d_model` wide).
models::DecoderLMConfig small_lm(std::int64_t d_model = 16) {
  models::DecoderLMConfig c;
  c.model.d_model = d_model;
  c.model.heads = 2;
  c.model.d_ff = 2 * d_model;
  c.model.max_len = 8;
  c.model.dropout = 0.2;
  c.vocab = 11;
  c.batch = 4;
  c.seq_len = 8;
  return c;
}

/// One step of a small LM on a batch of 4 random sequences (3 to 8 tokens; each label the next
/// token) drawn from `data`.
double train_step(Trainer& trainer, const models::DecoderLM& m, std::mt19937_64& data, std::int64_t step) {
  std::vector<std::vector<std::int32_t>> tokens, labels;
  for (int b = 0; b < 4; ++b) {
    const auto n = static_cast<std::size_t>(3 + data() % 6);
    tokens.emplace_back(n), labels.emplace_back(n);
    for (std::size_t i = 0; i < n; ++i) tokens.back()[i] = static_cast<std::int32_t>(data() % 11), labels.back()[i] = (tokens.back()[i] + 1) % 11;
  }
  const PaddedBatch in = pad_sequences(tokens, 8, 0), out = pad_sequences(labels, 8, 0);
  return trainer.step({{m.tokens, in.tokens}, {m.lengths, in.lengths}, {m.labels, out.tokens}},
                      optim::WarmupCosine{3e-3, 2, 10, 0.0}(step));
}

/// Trains a small decoder LM with dropout, drawing batches from its own RNG, for steps [first, last);
/// returns the losses. With a checkpoint path, first loads it (and the data RNG) or saves at the end.
std::vector<double> train_lm(std::int64_t first, std::int64_t last, const std::string& load_from, const std::string& save_to) {
  Graph g(42);
  const models::DecoderLM m = models::decoder_lm(g, small_lm());
  Trainer trainer(g, m.objective, optim::adamw_factory(0.01, 1.0));
  std::mt19937_64 data(7);
  if (!load_from.empty()) {
    std::istringstream(trainer.load(load_from).at("data_rng")) >> data;
  }
  std::vector<double> losses;
  for (std::int64_t step = first; step < last; ++step) losses.push_back(train_step(trainer, m, data, step));
  if (!save_to.empty()) {
    std::ostringstream rng;
    rng << data;
    trainer.save(save_to, {{"data_rng", rng.str()}});
  }
  return losses;
}

}  // namespace

TEST_CASE("resume: N steps, save, load in a fresh process, M more steps equal N+M steps in one run, bit for bit") {
  TempDir dir;
  const std::vector<double> whole = train_lm(0, 10, "", "");
  const std::vector<double> head = train_lm(0, 6, "", dir / "resume.safetensors");
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // the fresh process: nothing but the checkpoint carries over
    ::close(pipe_fds[0]);
    const std::vector<double> tail = train_lm(6, 10, dir / "resume.safetensors", "");
    const bool ok = ::write(pipe_fds[1], tail.data(), tail.size() * sizeof(double)) ==
                    static_cast<ssize_t>(tail.size() * sizeof(double));
    ::_exit(ok ? 0 : 1);
  }
  ::close(pipe_fds[1]);
  std::vector<double> tail(4);
  const ssize_t got = ::read(pipe_fds[0], tail.data(), tail.size() * sizeof(double));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(got == static_cast<ssize_t>(tail.size() * sizeof(double)));
  for (std::size_t k = 0; k < 6; ++k) CHECK(head[k] == whole[k]);
  for (std::size_t k = 0; k < 4; ++k) {
    CAPTURE(k);
    CHECK(tail[k] == whole[6 + k]);
  }
  CHECK(whole.back() < whole.front());
}

namespace {

/// A small LM in training whose batch at step k comes from its own RNG, so that a run resumed at any
/// step sees the data an uninterrupted run sees. Wider than train_lm's, so that a save takes a while.
struct LMRun {
  Graph g{42};
  models::DecoderLM m = models::decoder_lm(g, small_lm(64));
  Trainer trainer{g, m.objective, optim::adamw_factory(0.01, 1.0)};

  double step(std::int64_t k) {
    std::mt19937_64 data(1000 + static_cast<std::uint64_t>(k));
    return train_step(trainer, m, data, k);
  }
  /// The bytes of every parameter and optimizer tensor, then the step count and run index.
  std::vector<std::vector<std::uint8_t>> state() {
    std::vector<std::vector<std::uint8_t>> out;
    auto add = [&](const Tensor& t) {
      const auto* bytes = static_cast<const std::uint8_t*>(t.data());
      out.emplace_back(bytes, bytes + static_cast<std::size_t>(t.numel()) * size_of(t.dtype()));
    };
    for (Var p : g.params()) add(g.value(p));
    for (const auto& s : trainer.optimizer().state()) add(*s.value);
    const std::string counters = fmt::format("{} {}", trainer.optimizer().steps(), trainer.program().run_index());
    out.emplace_back(counters.begin(), counters.end());
    return out;
  }
};

}  // namespace

TEST_CASE("killed at random points while saving: the checkpoint is always one whole state and resumes bit for bit") {
  TempDir dir;
  const std::string path = dir / "run.safetensors";
  // The uninterrupted run: the loss of every step, and the states after 4 and 5 steps.
  LMRun uninterrupted;
  std::vector<double> losses;
  std::map<std::int64_t, std::vector<std::vector<std::uint8_t>>> after;
  for (std::int64_t k = 0; k < 5; ++k) {
    losses.push_back(uninterrupted.step(k));
    if (k + 1 >= 4) after[k + 1] = uninterrupted.state();
  }
  // The two states the child saves in turn: after 2 and after 3 steps.
  LMRun two, three;
  for (std::int64_t k = 0; k < 3; ++k) {
    if (k < 2) two.step(k);
    three.step(k);
  }
  after[2] = two.state();
  after[3] = three.state();
  REQUIRE(after[2] != after[3]);
  // A good checkpoint is in place before the first kill; the saves time the kills (fsync dominates):
  // random delays over about two rounds of the child's loop, at most 50 ms each.
  const auto start = std::chrono::steady_clock::now();
  for (int k = 0; k < 3; ++k) two.trainer.save(path, {{"steps", "2"}});
  const double save_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / 3;
  std::uniform_int_distribution<int> delay_us(0, static_cast<int>(std::min(4.0 * save_us, 50000.0)));

  LMRun resumed;
  std::mt19937 rng(5);
  int interrupted = 0;  // kills that left the temporary file of a save in progress
  std::set<std::string> seen;
  for (int kill = 0; kill < 30; ++kill) {
    CAPTURE(kill);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::alarm(30);  // never outlive a parent that failed to kill it
      for (;;) {
        two.trainer.save(path, {{"steps", "2"}});
        three.trainer.save(path, {{"steps", "3"}});
      }
    }
    ::usleep(static_cast<useconds_t>(delay_us(rng)));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);  // not an exception or a crash of the child's own

    // A kill between creating the temporary file and renaming it leaves that file beside the
    // target (nothing can remove it): at most one, named after the target. We clean it up.
    std::vector<fs::path> strays;
    for (const auto& entry : fs::directory_iterator(dir.path)) {
      if (entry.path() != fs::path(path)) strays.push_back(entry.path());
    }
    CHECK(strays.size() <= 1);
    for (const fs::path& stray : strays) {
      CHECK(stray.filename().string().starts_with("run.safetensors.tmp-"));
      fs::remove(stray);
    }
    interrupted += static_cast<int>(strays.size());

    // The target is one whole state, and training continues from it as the uninterrupted run did.
    const std::string steps = resumed.trainer.load(path).at("steps");
    REQUIRE((steps == "2" || steps == "3"));
    const std::int64_t done = steps == "2" ? 2 : 3;
    seen.insert(steps);
    CHECK(resumed.state() == after[done]);
    for (std::int64_t k = done; k < done + 2; ++k) CHECK(resumed.step(k) == losses[static_cast<std::size_t>(k)]);
    CHECK(resumed.state() == after[done + 2]);
  }
  CHECK(interrupted > 0);   // some kills did land inside a save
  CHECK(seen.size() == 2);  // and both states were found in place
}
