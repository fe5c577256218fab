#include "graph/registry.hpp"

#include <algorithm>
#include <charconv>
#include <set>

#include <fmt/format.h>

#include "graph/decoder_lm.hpp"
#include "graph/encoder_classifier.hpp"
#include "graph/seq2seq.hpp"

namespace xg::models {

namespace {

const std::set<std::string, std::less<>> kShared{"d_model", "heads", "d_ff", "max_len", "dropout", "norm", "activation",
                                                 "positions", "scale_embedding", "init_std", "dtype"};
const std::map<std::string, std::set<std::string, std::less<>>, std::less<>> kFamilies{
    {"decoder_lm", {"vocab", "layers", "tied", "batch", "seq"}},
    {"encoder_classifier", {"vocab", "classes", "layers", "batch", "seq"}},
    {"seq2seq", {"src_vocab", "tgt_vocab", "encoder_layers", "decoder_layers", "batch", "src_len", "tgt_len"}},
};

/// Reads the settings of one recipe, each at most once, with the default where one is missing.
class Settings {
 public:
  explicit Settings(const ModelRecipe& recipe) : recipe_(recipe) {}

  std::int64_t integer(std::string_view key, std::int64_t fallback) const {
    const std::string* text = find(key);
    if (text == nullptr) return fallback;
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (error != std::errc() || end != text->data() + text->size()) fail(key, *text, "an integer");
    return value;
  }
  double real(std::string_view key, double fallback) const {
    const std::string* text = find(key);
    if (text == nullptr) return fallback;
    std::size_t used = 0;
    double value = 0.0;
    try {
      value = std::stod(*text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text->size()) fail(key, *text, "a number");
    return value;
  }
  template <class Enum>
  Enum choice(std::string_view key, std::initializer_list<std::pair<std::string_view, Enum>> options, Enum fallback) const {
    const std::string* text = find(key);
    if (text == nullptr) return fallback;
    std::vector<std::string_view> names;
    for (const auto& [name, value] : options) {
      if (name == *text) return value;
      names.push_back(name);
    }
    fail(key, *text, fmt::format("one of {}", fmt::join(names, ", ")));
  }
  std::optional<double> optional_real(std::string_view key) const {
    return find(key) == nullptr ? std::nullopt : std::optional<double>(real(key, 0.0));
  }
  bool flag(std::string_view key, bool fallback) const { return choice(key, {{"0", false}, {"1", true}}, fallback); }

 private:
  const std::string* find(std::string_view key) const {
    auto it = recipe_.settings.find(key);
    return it == recipe_.settings.end() ? nullptr : &it->second;
  }
  [[noreturn]] void fail(std::string_view key, std::string_view text, std::string_view wanted) const {
    throw ValueError(fmt::format("model config of {}: {}={} is not {}", recipe_.family, key, text, wanted));
  }
  const ModelRecipe& recipe_;
};

ModelConfig model_config(const Settings& s, std::int64_t longest) {
  ModelConfig c;
  c.d_model = s.integer("d_model", c.d_model);
  c.heads = s.integer("heads", c.heads);
  c.d_ff = s.integer("d_ff", c.d_ff);
  c.max_len = s.integer("max_len", longest);
  c.dropout = s.real("dropout", c.dropout);
  c.norm = s.choice("norm", {{"post", nn::NormStyle::post}, {"pre", nn::NormStyle::pre}}, c.norm);
  c.activation = s.choice(
      "activation",
      {{"relu", nn::Activation::relu}, {"gelu", nn::Activation::gelu}, {"gelu_tanh", nn::Activation::gelu_tanh}},
      c.activation);
  c.positions = s.choice("positions", {{"sinusoidal", Positions::sinusoidal}, {"learned", Positions::learned}}, c.positions);
  c.scale_embedding = s.flag("scale_embedding", c.scale_embedding);
  c.init_std = s.optional_real("init_std");
  return c;
}

}  // namespace

ModelRecipe parse_recipe(std::string_view family, std::string_view config) {
  auto known = kFamilies.find(family);
  if (known == kFamilies.end()) {
    std::vector<std::string_view> names;
    for (const auto& entry : kFamilies) names.push_back(entry.first);
    throw ValueError(fmt::format("unknown model family '{}' (known: {})", family, fmt::join(names, ", ")));
  }
  ModelRecipe recipe{std::string(family), {}, DType::f32};
  std::size_t at = 0;
  while (at < config.size()) {
    const std::size_t end = std::min(config.find(' ', at), config.size());
    const std::string_view item = config.substr(at, end - at);
    at = end + 1;
    if (item.empty()) continue;
    const std::size_t equals = item.find('=');
    const std::string key(item.substr(0, equals));
    if (equals == std::string_view::npos || equals == 0 || equals + 1 == item.size()) {
      throw ValueError(fmt::format("model config of {}: '{}' is not key=value", family, item));
    }
    if (!kShared.contains(key) && !known->second.contains(key)) {
      std::vector<std::string_view> keys(known->second.begin(), known->second.end());
      keys.insert(keys.end(), kShared.begin(), kShared.end());
      throw ValueError(fmt::format("model config of {}: unknown key '{}' (known: {})", family, key, fmt::join(keys, ", ")));
    }
    if (!recipe.settings.emplace(key, std::string(item.substr(equals + 1))).second) {
      throw ValueError(fmt::format("model config of {}: '{}' is given twice", family, key));
    }
  }
  recipe.float_type = Settings(recipe).choice("dtype", {{"f32", DType::f32}, {"f64", DType::f64}}, DType::f32);
  return recipe;
}

BuiltModel build_model(Graph& g, const ModelRecipe& recipe) {
  const Settings s(recipe);
  if (recipe.family == "decoder_lm") {
    DecoderLMConfig c;
    c.vocab = s.integer("vocab", c.vocab);
    c.layers = static_cast<int>(s.integer("layers", c.layers));
    c.tied_output = s.flag("tied", c.tied_output);
    c.batch = s.integer("batch", c.batch);
    c.seq_len = s.integer("seq", c.seq_len);
    c.model = model_config(s, c.seq_len);
    const DecoderLM m = decoder_lm(g, c);
    return {{{"logits", m.logits}, {"objective", m.objective}}, m.objective, m.token_count};
  }
  if (recipe.family == "encoder_classifier") {
    EncoderClassifierConfig c;
    c.vocab = s.integer("vocab", c.vocab);
    c.classes = s.integer("classes", c.classes);
    c.layers = static_cast<int>(s.integer("layers", c.layers));
    c.batch = s.integer("batch", c.batch);
    c.seq_len = s.integer("seq", c.seq_len);
    c.model = model_config(s, c.seq_len);
    const EncoderClassifier m = encoder_classifier(g, c);
    return {{{"logits", m.logits}, {"objective", m.objective}}, m.objective};
  }
  Seq2SeqConfig c;
  c.src_vocab = s.integer("src_vocab", c.src_vocab);
  c.tgt_vocab = s.integer("tgt_vocab", c.tgt_vocab);
  c.encoder_layers = static_cast<int>(s.integer("encoder_layers", c.encoder_layers));
  c.decoder_layers = static_cast<int>(s.integer("decoder_layers", c.decoder_layers));
  c.batch = s.integer("batch", c.batch);
  c.src_len = s.integer("src_len", c.src_len);
  c.tgt_len = s.integer("tgt_len", c.tgt_len);
  c.model = model_config(s, std::max(c.src_len, c.tgt_len));
  const Seq2Seq m = seq2seq(g, c);
  return {{{"logits", m.logits}, {"objective", m.objective}}, m.objective, m.token_count};
}

xt::xarray<std::int32_t> random_input(const ModelRecipe& recipe, const Node& input, std::mt19937& rng) {
  const Settings s(recipe);
  const std::string& name = input.name;
  std::int64_t low = 0, high = 0;  // [low, high)
  if (name.ends_with("lengths")) {
    const bool source = name.starts_with("src");
    low = 1;
    if (recipe.family == "decoder_lm") high = 1 + s.integer("seq", DecoderLMConfig{}.seq_len);
    else if (recipe.family == "encoder_classifier") high = 1 + s.integer("seq", EncoderClassifierConfig{}.seq_len);
    else high = 1 + (source ? s.integer("src_len", Seq2SeqConfig{}.src_len) : s.integer("tgt_len", Seq2SeqConfig{}.tgt_len));
  } else if (recipe.family == "encoder_classifier") {
    high = name == "labels" ? s.integer("classes", EncoderClassifierConfig{}.classes) : s.integer("vocab", EncoderClassifierConfig{}.vocab);
  } else if (recipe.family == "seq2seq") {
    high = name.starts_with("src") ? s.integer("src_vocab", Seq2SeqConfig{}.src_vocab) : s.integer("tgt_vocab", Seq2SeqConfig{}.tgt_vocab);
  } else {
    high = s.integer("vocab", DecoderLMConfig{}.vocab);
  }
  if (high <= low) throw ValueError(fmt::format("random_input: no valid values for input '{}' of {}", name, recipe.family));
  xt::xarray<std::int32_t> values = xt::zeros<std::int32_t>(std::vector<std::size_t>(input.shape.begin(), input.shape.end()));
  std::uniform_int_distribution<std::int64_t> pick(low, high - 1);
  for (auto& v : values) v = static_cast<std::int32_t>(pick(rng));
  return values;
}

RandomInputs::RandomInputs(const ModelRecipe& recipe, Graph& g, std::span<const CheckpointTensor> slots, std::mt19937& rng) {
  arrays_.reserve(slots.size());  // the feeds view the arrays: they must not move
  for (const CheckpointTensor& slot : slots) {
    const Var input = g.find(slot.name);
    if (slot.dtype != DType::i32) throw ValueError(fmt::format("RandomInputs: input '{}' is not i32", slot.name));
    arrays_.push_back(random_input(recipe, input.node(), rng));
    std::copy(arrays_.back().begin(), arrays_.back().end(), static_cast<std::int32_t*>(slot.data));
    feeds_.push_back({input, arrays_.back()});
  }
}

RandomInputs::RandomInputs(const ModelRecipe& recipe, Graph& g, std::mt19937& rng) {
  const std::vector<Var> inputs = g.inputs();
  arrays_.reserve(inputs.size());
  for (Var input : inputs) {
    arrays_.push_back(random_input(recipe, input.node(), rng));
    feeds_.push_back({input, arrays_.back()});
  }
}

}  // namespace xg::models
