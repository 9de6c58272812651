#include "optiq/kv/kv_config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace optiq::kv {
namespace {

TEST(KVConfig, ReadsMlxOptiqFiles) {
    // As optiq/core/kv_cache.py writes it: sparse layer indices, bits 0 = full precision.
    const auto cfg = parse_kv_config(R"([{"layer_idx": 0, "bits": 8, "group_size": 64},
        {"layer_idx": 3, "bits": 4, "group_size": 64}, {"layer_idx": 7, "bits": 0, "group_size": 32}])");
    ASSERT_EQ(cfg.layers.size(), 3u);
    EXPECT_EQ(cfg.layers[1].layer_idx, 3);
    EXPECT_EQ(cfg.layers[1].key_bits(), 4);
    EXPECT_EQ(cfg.layers[1].value_bits(), 4);
    EXPECT_EQ(cfg.layers[1].method_or_default(), "affine");
    EXPECT_EQ(cfg.layers[2].group_size, 32u);
    EXPECT_EQ(cfg.layers[2].bits, 0);
    ASSERT_NE(cfg.find(7), nullptr);
    EXPECT_EQ(cfg.find(7)->bits, 0);
    EXPECT_EQ(cfg.find(1), nullptr);
    EXPECT_DOUBLE_EQ(cfg.mean_bits(), (8.0 + 4.0 + 16.0) / 3.0);
}

TEST(KVConfig, OptionalFieldsAndRoundTripThroughAFile) {
    const auto cfg = parse_kv_config(
        R"([{"layer_idx": 1, "bits": 4, "group_size": 64, "k_bits": 4, "v_bits": 2, "method": "tq_mse", "kl": 0.3},
            {"layer_idx": 0, "bits": 3}])");
    EXPECT_EQ(cfg.layers[0].key_bits(), 4);
    EXPECT_EQ(cfg.layers[0].value_bits(), 2);
    EXPECT_EQ(cfg.layers[0].method, "tq_mse");
    EXPECT_EQ(cfg.layers[1].group_size, 64u);  // default
    EXPECT_FALSE(cfg.layers[1].k_bits.has_value());
    const auto path = std::filesystem::path(::testing::TempDir()) / "optiq_kv_config_roundtrip.json";
    write_kv_config(path, cfg);
    EXPECT_EQ(read_kv_config(path), cfg);
    // Entries without optional fields are written exactly as mlx-optiq writes them.
    EXPECT_NE(to_json(cfg).find("\"layer_idx\": 0,\n    \"bits\": 3,\n    \"group_size\": 64\n"), std::string::npos)
        << to_json(cfg);
    std::filesystem::remove(path);
}

void expect_error_mentions(const std::string& text, const std::string& what, const char* kind) {
    try {
        (void)parse_kv_config(text, "models/x/kv_config.json");
        ADD_FAILURE() << "accepted: " << text;
    } catch (const error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("models/x/kv_config.json"), std::string::npos) << msg;
        EXPECT_NE(msg.find(what), std::string::npos) << msg;
        const bool is_format = dynamic_cast<const format_error*>(&e) != nullptr;
        EXPECT_EQ(is_format, std::string(kind) == "format") << msg;
    }
}

TEST(KVConfig, MalformedFilesNameTheFileAndTheField) {
    expect_error_mentions("[{\"layer_idx\": 0, \"bits\": 4", "not valid JSON", "format");
    expect_error_mentions(R"({"layer_idx": 0, "bits": 4})", "expected a JSON list", "format");
    expect_error_mentions(R"([4])", "entry 0: expected an object", "format");
    expect_error_mentions(R"([{"layer_idx": 0, "bits": 4}, {"layer_idx": 1}])", "entry 1: missing field \"bits\"",
                          "format");
    expect_error_mentions(R"([{"bits": 4}])", "missing field \"layer_idx\"", "format");
    expect_error_mentions(R"([{"layer_idx": 0, "bits": "4"}])", "field \"bits\" must be an integer", "format");
    expect_error_mentions(R"([{"layer_idx": 0, "bits": 4.5}])", "field \"bits\" must be an integer", "format");
    expect_error_mentions(R"([{"layer_idx": 0, "bits": true}])", "field \"bits\" must be an integer", "format");
    expect_error_mentions(R"([{"layer_idx": 0, "bits": 9}])", "field \"bits\" = 9 is out of range", "config");
    expect_error_mentions(R"([{"layer_idx": -1, "bits": 4}])", "field \"layer_idx\" = -1", "config");
    expect_error_mentions(R"([{"layer_idx": 0, "bits": 4, "group_size": 0}])", "field \"group_size\" = 0", "config");
    expect_error_mentions(R"([{"layer_idx": 0, "bits": 4, "v_bits": 12}])", "field \"v_bits\" = 12", "config");
    expect_error_mentions(R"([{"layer_idx": 0, "bits": 4, "method": "int4"}])", "field \"method\" = \"int4\"",
                          "config");
    expect_error_mentions(R"([{"layer_idx": 0, "bits": 4, "method": 3}])", "field \"method\" must be a string",
                          "format");
    expect_error_mentions(R"([{"layer_idx": 2, "bits": 4}, {"layer_idx": 2, "bits": 8}])",
                          "entry 1: field \"layer_idx\" = 2 appears twice", "config");
    // nlohmann raises out_of_range (not parse_error) for a number beyond double: it once escaped.
    expect_error_mentions(R"([{"layer_idx": 1e999, "bits": 4}])", "not valid JSON", "format");
    // Past INT64_MAX, get<long long>() read -1: the message now quotes the value written.
    expect_error_mentions(R"([{"layer_idx": 18446744073709551615, "bits": 4}])",
                          "field \"layer_idx\" = 18446744073709551615 is out of range", "config");
    expect_error_mentions(R"([{"layer_idx": 0, "bits": 4, "group_size": 4294967360}])", "field \"group_size\"",
                          "config");
    EXPECT_THROW((void)read_kv_config("/nonexistent/kv_config.json"), format_error);
    EXPECT_TRUE(parse_kv_config("[]").layers.empty());
}

}  // namespace
}  // namespace optiq::kv
