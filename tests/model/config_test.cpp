#include "optiq/model/config.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace optiq::model {
namespace {

nlohmann::json smollm2() {
    return {{"model_type", "llama"},          {"hidden_size", 576},        {"intermediate_size", 1536},
            {"num_hidden_layers", 30},        {"num_attention_heads", 9},  {"num_key_value_heads", 3},
            {"vocab_size", 49152},            {"rms_norm_eps", 1e-5},      {"rope_theta", 100000.0},
            {"tie_word_embeddings", true},    {"max_position_embeddings", 8192}, {"eos_token_id", 2},
            {"bos_token_id", 1}};
}

TEST(ModelConfig, ReadsHfConfig) {
    const auto c = config_from_hf_json(smollm2(), "config.json");
    EXPECT_EQ(c.arch, Arch::llama);
    EXPECT_EQ(c.head_dim, 64u);
    EXPECT_EQ(c.kv_dim(), 192u);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_FALSE(c.rope_interleaved);
    EXPECT_FALSE(c.attention_bias);
    EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
    EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
    auto q2 = smollm2();
    q2["model_type"] = "qwen2";
    q2["eos_token_id"] = {151645, 151643};
    const auto cq = config_from_hf_json(q2, "q");
    EXPECT_TRUE(cq.attention_bias);
    EXPECT_EQ(cq.eos_token_ids, (std::vector<int>{151645, 151643}));
    auto q3 = smollm2();
    q3["model_type"] = "qwen3";
    q3["head_dim"] = 128;
    const auto c3 = config_from_hf_json(q3, "q3");
    EXPECT_TRUE(c3.qk_norm);
    EXPECT_EQ(c3.q_dim(), 9u * 128u);
}

TEST(ModelConfig, SlidingWindowLimitsTheContext) {
    // Mistral-7B-v0.1's config: a 4096-token window under 32768 positions.
    auto m = smollm2();
    m["model_type"] = "mistral";
    m["max_position_embeddings"] = 32768;
    m["sliding_window"] = 4096;
    const auto cm = config_from_hf_json(m, "mistral");
    EXPECT_EQ(cm.sliding_window, 4096u);
    EXPECT_EQ(cm.max_seq_len, 4096u);
    m["sliding_window"] = nullptr;  // Mistral v0.2+
    EXPECT_EQ(config_from_hf_json(m, "mistral").sliding_window, 0u);
    EXPECT_EQ(config_from_hf_json(m, "mistral").max_seq_len, 32768u);
    m["sliding_window"] = 0;
    EXPECT_THROW((void)config_from_hf_json(m, "mistral"), config_error);
    // Qwen2 ships "sliding_window": 32768 with "use_sliding_window": false.
    auto q = smollm2();
    q["model_type"] = "qwen2";
    q["max_position_embeddings"] = 32768;
    q["sliding_window"] = 1024;
    q["use_sliding_window"] = false;
    EXPECT_EQ(config_from_hf_json(q, "qwen2").sliding_window, 0u);
    EXPECT_EQ(config_from_hf_json(q, "qwen2").max_seq_len, 32768u);
    q["use_sliding_window"] = true;
    EXPECT_EQ(config_from_hf_json(q, "qwen2").max_seq_len, 1024u);
}

TEST(ModelConfig, RopeFrequenciesAndLlama3Scaling) {
    auto c = config_from_hf_json(smollm2(), "c");
    const auto f = c.rope_inv_freq();
    ASSERT_EQ(f.size(), 32u);
    EXPECT_FLOAT_EQ(f[0], 1.0f);
    EXPECT_NEAR(f[16], std::pow(100000.0, -0.5), 1e-9);
    // Llama 3.1/3.2 scaling: factor 32, low 1, high 4, original 8192 (HF _compute_llama3_parameters).
    auto j = smollm2();
    j["rope_theta"] = 500000.0;
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
    const auto s = config_from_hf_json(j, "s").rope_inv_freq();
    j.erase("rope_scaling");
    const auto u = config_from_hf_json(j, "u").rope_inv_freq();
    const double pi = 3.14159265358979;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const double wl = 2 * pi / u[i];
        if (wl < 8192.0 / 4) EXPECT_FLOAT_EQ(s[i], u[i]) << i;              // high frequencies kept
        else if (wl > 8192.0) EXPECT_FLOAT_EQ(s[i], u[i] / 32.0f) << i;    // low frequencies / factor
        else {
            const double sm = (8192.0 / wl - 1.0) / 3.0;
            EXPECT_NEAR(s[i], (1 - sm) * u[i] / 32 + sm * u[i], 1e-6 * u[i]) << i;
        }
    }
}

TEST(ModelConfig, ErrorsNameTheSource) {
    auto j = smollm2();
    j["model_type"] = "gpt_neox";
    try {
        (void)config_from_hf_json(j, "dir/config.json");
        FAIL();
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("dir/config.json: unknown architecture 'gpt_neox'"), std::string::npos);
    }
    j = smollm2();
    j.erase("hidden_size");
    EXPECT_THROW((void)config_from_hf_json(j, "c"), format_error);
    j = smollm2();
    j["num_key_value_heads"] = 4;
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    j = smollm2();
    j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
}

nlohmann::json llama3_scaling() {
    auto j = smollm2();
    j["rope_theta"] = 500000.0;
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
    return j;
}

TEST(ModelConfig, Llama3ScalingFactorsAreValidated) {
    ASSERT_NO_THROW((void)config_from_hf_json(llama3_scaling(), "c"));
    // high == low divided by zero in rope_inv_freq(): the smoothed band came out inf / NaN.
    auto j = llama3_scaling();
    j["rope_scaling"]["high_freq_factor"] = 1.0;
    try {
        (void)config_from_hf_json(j, "dir/config.json");
        FAIL() << "high_freq_factor == low_freq_factor accepted";
    } catch (const config_error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("dir/config.json"), std::string::npos) << msg;
        EXPECT_NE(msg.find("high_freq_factor"), std::string::npos) << msg;
    }
    j["rope_scaling"]["high_freq_factor"] = 0.5;  // below low
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    for (const char* field : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
        for (const double bad : {0.0, -2.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
            j = llama3_scaling();
            j["rope_scaling"][field] = bad;
            EXPECT_THROW((void)config_from_hf_json(j, "c"), error) << field << " = " << bad;
        }
    }
    j = llama3_scaling();
    j["rope_scaling"]["factor"] = 1e300;  // beyond float: was converted with undefined behaviour
    EXPECT_THROW((void)config_from_hf_json(j, "c"), format_error);
    j = smollm2();
    j["rope_theta"] = 1e-300;  // 0 as a float
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    j["rope_theta"] = 1e-45;  // a float whose reciprocal is inf: inverse frequencies would be inf
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    j["rope_theta"] = "10000";
    EXPECT_THROW((void)config_from_hf_json(j, "c"), format_error);
    j = smollm2();
    j["rope_scaling"] = "llama3";
    EXPECT_THROW((void)config_from_hf_json(j, "c"), format_error);
}

TEST(ModelConfig, TokenIdsAreRangeCheckedBeforeNarrowing) {
    auto j = smollm2();
    j["eos_token_id"] = (1ll << 32) + 2;  // once read as token 2
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    j["eos_token_id"] = {2, 4294967295ull};
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    j["eos_token_id"] = -1;
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    j["eos_token_id"] = {2, "3"};
    EXPECT_THROW((void)config_from_hf_json(j, "c"), format_error);
    j["eos_token_id"] = nullptr;
    EXPECT_TRUE(config_from_hf_json(j, "c").eos_token_ids.empty());
    j["eos_token_id"] = 2147483647;
    EXPECT_EQ(config_from_hf_json(j, "c").eos_token_ids, std::vector<int>{2147483647});
    j = smollm2();
    j["bos_token_id"] = 1ll << 40;
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    j["bos_token_id"] = 2.0;
    EXPECT_THROW((void)config_from_hf_json(j, "c"), format_error);
    j["bos_token_id"] = nullptr;
    EXPECT_EQ(config_from_hf_json(j, "c").bos_token_id, -1);
}

TEST(ModelConfig, SizesAreBoundedAndTheirProductsChecked) {
    auto j = smollm2();
    j["vocab_size"] = 1ll << 40;
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    j = smollm2();
    j["hidden_size"] = 18446744073709551615ull;
    EXPECT_THROW((void)config_from_hf_json(j, "c"), error);
    j = smollm2();
    j["max_position_embeddings"] = 1ll << 31;
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    j = smollm2();
    j["num_hidden_layers"] = 1 << 20;  // the loader sized its layer table from this before reading a tensor
    EXPECT_THROW((void)config_from_hf_json(j, "c"), config_error);
    // Each size within bounds, but n_layers x (dim x q_dim) past 2^64.
    j = smollm2();
    j["hidden_size"] = 1 << 30;
    j["num_attention_heads"] = 1 << 20;
    j["num_key_value_heads"] = 1 << 20;
    j["head_dim"] = 1 << 30;
    try {
        (void)config_from_hf_json(j, "c");
        FAIL() << "accepted";
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("overflows"), std::string::npos) << e.what();
    }
    EXPECT_EQ(config_from_hf_json(smollm2(), "c").weight_elements(), 134515008u);  // SmolLM2-135M
}

TEST(ModelConfig, JsonGetChecksTypeAndRangeAtFullWidth) {
    const nlohmann::json q = nlohmann::json::parse(R"({"bits": 1e10, "big": 4294967300, "neg": -1, "s": "x",
                                                       "f": 2.5, "b": true, "ok": 8})");
    EXPECT_THROW((void)detail::json_get<int>(q, "bits", 4, "c"), format_error);        // was UB (float -> int)
    EXPECT_THROW((void)detail::json_get<int>(q, "big", 4, "c"), format_error);         // was wrapped to 4
    EXPECT_THROW((void)detail::json_get<std::size_t>(q, "neg", 64, "c"), format_error);  // was SIZE_MAX
    EXPECT_THROW((void)detail::json_get<std::size_t>(q, "f", 64, "c"), format_error);
    EXPECT_THROW((void)detail::json_get<bool>(q, "ok", false, "c"), format_error);
    EXPECT_THROW((void)detail::json_get<std::string>(q, "ok", "", "c"), format_error);
    EXPECT_THROW((void)detail::json_get<float>(q, "s", 0.f, "c"), format_error);
    EXPECT_EQ(detail::json_get<int>(q, "ok", 4, "c"), 8);
    EXPECT_EQ(detail::json_get<std::size_t>(q, "missing", 64, "c"), 64u);
    EXPECT_EQ(detail::json_get<float>(q, "ok", 0.f, "c"), 8.f);
    EXPECT_EQ(detail::json_get<std::int64_t>(q, "big", 0, "c"), 4294967300);
    EXPECT_TRUE(detail::json_get<bool>(q, "b", false, "c"));
}

}  // namespace
}  // namespace optiq::model
