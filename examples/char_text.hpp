#pragma once
// What the character-level language-model examples share: the alphabet of a text, random training
// windows of it (padded, so that the loss mask is at work) and sampling from the model's logits.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <xgrad/train.hpp>

namespace xg::examples {

/// Characters <-> token ids; id 0 is padding.
struct Alphabet {
  std::array<std::int32_t, 256> id{};
  std::string chars{'\0'};
  explicit Alphabet(std::string_view text) {
    for (unsigned char c : text) {
      if (id[c] == 0) {
        id[c] = static_cast<std::int32_t>(chars.size());
        chars += static_cast<char>(c);
      }
    }
  }
  std::int64_t size() const { return static_cast<std::int64_t>(chars.size()); }
  std::vector<std::int32_t> encode(std::string_view text) const {
    std::vector<std::int32_t> ids;
    for (unsigned char c : text) ids.push_back(id[c]);
    return ids;
  }
};

inline std::string read_text(const std::string& path, std::string_view program) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fmt::print(stderr, "{}: cannot read {}\n", program, path);
    std::exit(1);
  }
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Windows of random start and length (a quarter to all of seq_len): the characters as input, the
/// characters one further as labels.
class TextWindows {
 public:
  TextWindows(std::vector<std::int32_t> ids, std::int64_t seq_len)
      : ids_(std::move(ids)), seq_len_(seq_len), start_(0, ids_.size() - static_cast<std::size_t>(seq_len) - 1),
        length_(static_cast<std::size_t>(seq_len) / 4, static_cast<std::size_t>(seq_len)) {}

  struct Batch {
    PaddedBatch inputs, labels;
  };
  Batch draw(std::mt19937_64& rng, std::int64_t batch) {
    std::vector<std::vector<std::int32_t>> inputs, targets;
    for (std::int64_t b = 0; b < batch; ++b) {
      const std::size_t at = start_(rng), n = length_(rng);
      const auto first = ids_.begin() + static_cast<std::ptrdiff_t>(at);
      inputs.emplace_back(first, first + static_cast<std::ptrdiff_t>(n));
      targets.emplace_back(first + 1, first + static_cast<std::ptrdiff_t>(n + 1));
    }
    return {pad_sequences(inputs, seq_len_, 0), pad_sequences(targets, seq_len_, 0)};
  }

 private:
  std::vector<std::int32_t> ids_;
  std::int64_t seq_len_;
  std::uniform_int_distribution<std::size_t> start_, length_;
};

/// Continues text samples one character at a time: the last seq_len characters of each sample go
/// in as one padded batch row; the logits at its last position give the next character.
class Sampler {
 public:
  Sampler(const Alphabet& alphabet, std::int64_t seq_len, double temperature)
      : alphabet_(alphabet), seq_len_(static_cast<std::size_t>(seq_len)), temperature_(temperature) {}

  PaddedBatch windows(const std::vector<std::string>& samples) const {
    std::vector<std::vector<std::int32_t>> rows;
    for (const std::string& s : samples) rows.push_back(alphabet_.encode(std::string_view(s).substr(s.size() > seq_len_ ? s.size() - seq_len_ : 0)));
    return pad_sequences(rows, static_cast<std::int64_t>(seq_len_), 0);
  }

  /// `logits`: (batch, seq_len, vocab) for windows(samples); vocab may exceed the alphabet.
  void extend(std::vector<std::string>& samples, const PaddedBatch& in, const float* logits, std::int64_t vocab,
              std::mt19937_64& rng) const {
    for (std::size_t b = 0; b < samples.size(); ++b) {
      const float* row = logits + (b * seq_len_ + static_cast<std::size_t>(in.lengths(b) - 1)) * static_cast<std::size_t>(vocab);
      std::vector<double> weights(static_cast<std::size_t>(alphabet_.size()));
      const float top = *std::max_element(row + 1, row + alphabet_.size());
      for (std::size_t v = 1; v < weights.size(); ++v) weights[v] = std::exp((row[v] - top) / temperature_);
      std::discrete_distribution<std::size_t> pick(weights.begin(), weights.end());
      samples[b] += alphabet_.chars[pick(rng)];
    }
  }

 private:
  const Alphabet& alphabet_;
  std::size_t seq_len_;
  double temperature_;
};

}  // namespace xg::examples
